"""Deep Compression with TFMOT (lesson 09).

``prune`` (magnitude pruning, sparsity in the file), ``cluster`` (weight sharing) and
``deep_compression`` (the stages chained: pruned, clustered, int8 by PTQ or by the
sparsity- and cluster-preserving QATs).
"""
