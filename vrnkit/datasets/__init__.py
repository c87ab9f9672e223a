"""Datasets on disk: ``shards`` (the sample format every dataset shares, its files, manifests and
loader), ``morphable`` (the 3DDFA / Basel face model and its parameter files) and ``real``
(300W-LP, AFLW2000-3D and your own scans -> the same shards, ``vrnkit prepare``).
"""
