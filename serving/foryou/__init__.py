"""For You: candidate sources, a learned ranker over their union, and the final list (see pipeline.py).

Arrays in, arrays out, in the graph's index space (graphrec.core.arrays.GraphArrays); the app layer builds the
arrays and injects the graph filter and the model's vectors, for `graphrec recommend` and `graphrec evaluate`.
"""
