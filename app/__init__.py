"""The Gradio demo of frb-sr: compare super-resolution methods, inspect binarized kernels, list models.

``app/ui.py`` is layout and event wiring; what it shows is computed by the library (``frb.compare``,
``frb.kernel_view``, ``frb.bench``) and ``app/catalog.py`` (the Models tab's table and plot), plain
Python that a command line or a test can use without Gradio. The demo never reaches the network: importing this package turns
on the Hub's offline mode and turns off Gradio's analytics (both read at import time, so this has
to happen before gradio or huggingface_hub are imported; an explicit setting wins).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
