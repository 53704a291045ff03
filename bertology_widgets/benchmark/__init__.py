"""The benchmarks behind ``bertology bench``: live re-scoring (:mod:`.live_scoring`) and a class of kernels
(:mod:`.classroom`). They ship in the wheel so that ``bertology bench`` runs from an installed package; they
import nothing from the tests."""
