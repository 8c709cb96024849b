"""The embedder: CNN backbones as lists of stages with their ImageNet weights (backbones), the model that maps an
image to a unit vector (embedder), batched image preparation and augmentation (transforms), and embedding passes
without gradients (embed).

Floor 2: may import data, runs and compute.
"""
