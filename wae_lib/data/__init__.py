"""The datasets: the paper's three training sources prepared as SPEC.md §4 describes, plus an offline sample set.
One module per concern:

* layout         the folder layout, source and set names, set files, identity files (the one home of them)
* options        PrepConfig, the preprocessing parameters
* decode         any file -> sRGB (EXIF orientation, ICC profile), or a reason (Rejected): the one decoder
* faces          the Haar face detector and the crop geometry
* prepare        the per-source processors and the chunked, resumable multiprocess runner (prepare_*)
* packed         a prepared folder's files: images.npy, manifest.csv, the state record
* sample         the embedded offline sample set
* duplicates     exact and near duplicates across every source, grouped before any split
* splits         the held-out rules and the mixed set's proportions
* build_sets     prepare_all and build_sets (sets/*.npy, info.json)
* download       download_data (torchvision)
* views          notebook 01's tables and image tiles
* loader         PackedImages, the training loader (torch)
* training_sets  a run's training set: its file, the digest data prep recorded, the loader, the init batch

The lowest layer (the import rules: wae_lib/__init__.py). Importing the package imports nothing, and the
preparation modules do not import torch, so the data stage's worker processes stay torch-free.
"""
