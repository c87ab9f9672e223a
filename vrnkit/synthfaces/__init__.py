"""SynthFaces, vrnkit's embedded dataset: synthetic faces with exact 3D labels, no download.

In the order of the data flow: ``mesh`` (the head's grid mesh and feature maps), ``model`` (the
face model: mean, identity and expression bases, landmarks, face region), ``render`` (a posed
face -> a photo-like crop, its landmarks and crop frame), ``dataset`` (the four protocols and
``vrnkit synth``: deterministic from (seed, protocol, index), resumable).
"""
