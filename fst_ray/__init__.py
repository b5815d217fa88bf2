"""fst-ray: distributed FST-Matching analysis of deepfake detectors on Ray."""

__version__ = "0.1.0"
