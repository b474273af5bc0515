"""ONNX Runtime CPU session options shared by the classifier and the detector."""

from __future__ import annotations

import os

import onnxruntime as ort


def cpu_options(threads: int = 0) -> ort.SessionOptions:
    """One intra-op thread per core (`threads`, 0: every core this process may use), no
    inter-op pool. The threads spin while a Run lasts and stop the moment it returns
    (session.force_spinning_stop): a face's ~70 small operators then hand over without
    sleeping and waking (measured: the classifier 2.2 against 3.0 ms a face, the detector
    1.2 against 1.5 ms, idle, 2-core Intel Xeon, `python -m bench.session_threads`), and
    nothing spins between requests, where the event loop needs the core."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options
