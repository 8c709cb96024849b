"""skinsim: lesion-similarity embeddings for dermatoscopic images (HAM10000 and other dermatoscopy datasets).

One package per concept; data flows down, from the commands on top to the pure concepts at the bottom. A package
may import only the packages on floors below its own (tests/test_architecture.py checks it):

    floor 7  bench      benchmarks and the loss screen (retrieval, search speed, dashboard speed and load)
    floor 6  train      the training run: command line, inputs, objective, sampler, epochs, outputs
    floor 5  audit      the dataset audit of a run: duplicates, label-issue candidates, outliers
    floor 4  evaluate   retrieval metrics, a run's reports, the 2-D map
    floor 3  search     exact and FAISS neighbours, SearchIndex, image archives, why-similar maps
    floor 2  model      the embedder: backbones, transforms, embedding passes
    floor 1  data       datasets (HAM10000, ISIC, PAD-UFES-20, any CSV), images, splits, download
    floor 0  runs       run folders, the config a run is made from, selections
    floor 0  compute    device, processes (torch.distributed), precision, torch.compile, memory

`skinsim.index`, `skinsim.benchmark` and `skinsim.screen` are the documented commands' names, kept on top.
"""

__version__ = "0.1.0"
