"""The Gradio demo of frb-sr: compare super-resolution methods, inspect binarized kernels, list models.

Everything outside ``app/ui.py`` is plain Python (arrays in, arrays out) so a command line or a
test can use it without Gradio. The demo never reaches the network: importing this package turns
on the Hub's offline mode and turns off Gradio's analytics (both read at import time, so this has
to happen before gradio or huggingface_hub are imported; an explicit setting wins).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
