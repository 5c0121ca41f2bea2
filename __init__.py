"""lrdoctor: training-run diagnostics for deep learning.

Sub-packages:
    lrdoctor.analyzers   read any TensorBoard logdir and classify each run (no torch needed)
    lrdoctor.collectors  log what the analyzers need from a torch training loop (needs torch)
    lrdoctor.dashboard   the Dash web app (`lrdoctor serve LOGDIR`)
"""

__version__ = "0.1.0"
