"""Longitudinal datasets: sources -> scan tables + clips -> splits -> pairs -> cached tensors."""
from bench.data.scans import LongitudinalDataset, DataError, Problem
from bench.data.sources import load_dataset, list_sources, register_source

__all__ = ["LongitudinalDataset", "DataError", "Problem", "load_dataset", "list_sources", "register_source"]
