"""The Ray side of a search: start or join Ray, resources and GPU probes (``cluster``),
the Tune wiring (``tuner``), the searcher adapter (``searcher``), the trainable
(``trainable``) and where results go (``storage``). The only package that imports Ray.
"""
