"""The experiments of ``bench/shapley.py``, one module each (the letters are its ``--parts``)."""
