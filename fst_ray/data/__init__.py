"""The ingest: FF++-layout videos (local or s3://) -> aligned-face Parquet tables (frames, fst_pairs, errors).

Pure parts: :mod:`manifest` (listing), :mod:`decode` (decord sampling), :mod:`align` (5-point similarity),
:mod:`landmarks` (landmark sources), :mod:`pairs` (FST triples), :mod:`views` (splits, H2 sets, hold-out).
Ray layer: :mod:`pipeline`. Job: ``jobs/prepare_data.py``.
"""
