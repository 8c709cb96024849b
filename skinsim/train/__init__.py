"""Training a run, `python -m skinsim.train`: the command line (cli), what it reads (inputs), what it is built from
(setup: model, objective, optimiser, sampler), the losses and miners (losses, mining, objective), the P x K
sampler (sampler), the frozen-trunk cache (trunk_cache), one epoch and the resume state (epoch), the finished
run folder (outputs, curves), and the script that orders them (train).

Floor 6: may import audit, evaluate, search, model, data, runs and compute.
"""
