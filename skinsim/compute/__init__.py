"""How computation runs: the device (device), processes under torchrun (distributed), bfloat16 passes
(precision), torch.compile of the frozen trunk (compiled), and glibc's memory reuse (allocator).

Floor 0: imports nothing of skinsim; torch only.
"""
