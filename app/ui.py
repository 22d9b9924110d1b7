"""The Gradio layout and event wiring: Compare, Kernels and Models tabs.

Handlers convert between components and the plain functions of ``frb.compare``, ``frb.kernel_view``
and ``app.catalog``; user errors become ``gr.Error`` (which API clients receive as exceptions) and
every notice is also written to a visible status box, since ``gr.Warning`` does not reach clients.
"""
from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr
import numpy as np

from frb import compare as cmp
from frb.bitwise.runner import BACKENDS, select_runner
from app.catalog import BENCHMARK, MODEL_HEADERS, ablation_markdown, model_points, model_rows, weights_infos
from app.examples import EXAMPLES, example_path
from app.outputs import new_run_folder, save_pngs
from frb.bench import model_speedups
from frb import hub
from frb.imaging import DEFAULT_MAX_PIXELS, ImageError
from frb.picture import Picture, load_picture
from frb.tiling import tiling_context
from frb.upscale import write_upscaled
from frb.weights import shared_model
from frb.kernel_view import SUPPLEMENT_TABLE1, TABLE_HEADERS, binarized_model_names, default_layer, kernel_view, layer_names
from frb.models import MODELS, SCALES

CONCURRENCY_LIMIT = 2  # one request per vCPU on a basic Space
QUEUE_SIZE = 16
DEFAULT_METHODS = ("bicubic", "srresnet", "frbc")

INTRO = """# frb-sr: binarized image super-resolution
FRB (Flexible Residual Binarization, ICML 2024) against full-precision SRResNet / SwinIR-S and the
binarized baselines (BNN, DoReFa, Bi-Real, IR-Net, BAM, BTM, ReActNet). Binarized models run on a
bitwise XNOR-popcount CPU engine by default. Outputs are lossless PNG."""

KERNELS_INTRO = """For one binary layer, each output channel's kernel (64 input channels x 3x3, laid out as an
8x8 grid of 3x3 tiles: a 24x24 image). Three rows on one colour scale: the **full-precision W** of the
same layer of the trained full-precision teacher (SRResNet, or SwinIR-S for FRBT), which the binarized
model starts from; its **vanilla binarization** mean|W_c|·sign(W) per output channel (the first-order,
DoReFa-style baseline); and **FRB**'s two binary bases α1·sign(W) + α2·sign(W − α1·sign(W)). A fourth
row, on its own colour scale, shows the trained binarized model's stored binary kernel W_b. The table
gives Σ|W − W_b| / Σ|W| per channel for vanilla and FRB binarization of W and FRB's improvement (the
paper's supplement, Table 1, on SRResNet's `body.0.conv1`: {:.2f}–{:.2f} %).""".format(*SUPPLEMENT_TABLE1["FRB improvement (%)"])


class ImageUpload(gr.Image):
    """``gr.Image`` that passes the uploaded file's path on undecoded, so that
    ``frb.picture.load_picture`` handles every format and reports bad files in its own words."""

    is_template = True  # rendered by the frontend as a plain Image

    def preprocess(self, payload):  # type: ignore[override]
        if payload is not None and payload.path is not None and not (payload.url or "").startswith("data:"):
            return payload.path
        return super().preprocess(payload)


def _choices(group: str) -> list[tuple[str, str]]:
    return [(spec.title, name) for name, spec in MODELS.items() if spec.group == group]


def offered_scales() -> list[int]:
    """The scales the manifest has weights for (all scales if it lists none, so the app still starts)."""
    return list(hub.shipped_scales()) or list(SCALES)


def _status(notices: list[str]) -> str:
    return "\n".join(f"• {n}" for n in notices) if notices else "ok"


log = logging.getLogger("frb-sr.app")
#: The last error of each browser session, shown in its Status box by ``show_error`` (Gradio's
#: toast fades; the box keeps it until the next run).
_errors: dict[str, str] = {}
ERROR_DURATION_S = 10


def user_error(message: str, upload: str | None = None, request: gr.Request | None = None) -> gr.Error:
    """The ``gr.Error`` to raise for a user's mistake: the server's upload path replaced by the file's
    name, one log line instead of a traceback, and the message kept for the session's Status box."""
    if upload:
        message = message.replace(str(upload), Path(upload).name)
    log.info("user error: %s", message)
    if request is not None and request.session_hash:
        _errors[request.session_hash] = message
    return gr.Error(message, duration=ERROR_DURATION_S, print_exception=False)


def show_error(request: gr.Request) -> str:
    """After a failed run: the Status box shows the error (and keeps it)."""
    return "error: " + _errors.pop(request.session_hash, "the run failed")


# ---------------------------------------------------------------------------------------------
# Compare handlers
# ---------------------------------------------------------------------------------------------


def _view(comparison: cmp.Comparison, x: float, y: float, size: float):
    """The region, the picker (first output with the region outlined) and the synchronized crops, as PNG files."""
    h, w = cmp.output_shape(comparison)
    region = cmp.snap_region(x, y, size, h, w, comparison.scale)
    crops = cmp.crops(comparison, region)
    paths = save_pngs({"region": cmp.outline(comparison.results[0].image, region)}
                      | {f"crop_{i:02d}": crop for i, (crop, _) in enumerate(crops)})
    return region, str(paths["region"]), [(str(paths[f"crop_{i:02d}"]), caption) for i, (_, caption) in enumerate(crops)]


def picture_8_bit(picture: Picture) -> np.ndarray:
    """HxWx3 uint8, or HxWx4 with the alpha plane; 16-bit levels rounded to 8 (``v8 = round(v16 / 257)``)."""
    planes = picture.rgb if picture.alpha is None else np.dstack([picture.rgb, picture.alpha])
    return planes if planes.dtype == np.uint8 else np.floor(planes / 257.0 + 0.5).astype(np.uint8)


def run_compare(
    image: str | None,
    mode: str,
    scale: int,
    baseline: list[str],
    full_precision: list[str],
    binarized: list[str],
    backend: str,
    fit: bool,
    region: tuple[int, int, int] | None = None,
    progress: gr.Progress = gr.Progress(),
    request: gr.Request | None = None,
):
    """The /compare endpoint: run the chosen methods and fill every output of the Compare tab.

    ``region`` (x, y, size) is the session's last crop region (a state, not part of the API); the
    first run of a session crops the centre. User errors raise ``gr.Error`` (see ``user_error``).
    """
    if image is None:
        raise user_error("upload an image, paste one or pick an example first", request=request)
    methods = list(baseline or []) + list(full_precision or []) + list(binarized or [])
    try:
        picture = load_picture(image, DEFAULT_MAX_PIXELS)
        comparison = cmp.compare(
            picture_8_bit(picture), methods, mode, int(scale), backend, fit=bool(fit),
            progress=lambda f, d: progress(f, desc=d),
        )
    except (ImageError, ValueError) as exc:
        raise user_error(str(exc), image, request) from None
    comparison.notices[:0] = picture.notices + (
        ["16-bit image: shown and processed at 8 bits here (the frb upscale command keeps 16 bits)"]
        if picture.bit_depth == 16 else [])
    h, w = cmp.output_shape(comparison)
    if region is None:
        start = cmp.default_region(comparison)
        region = (start.x, start.y, start.size)
    snapped, picker, crops = _view(comparison, *region)
    images = cmp.named_images(comparison, with_alpha=True)
    stems = {cmp.HR_LABEL: f"00_hr_x{comparison.scale}"} | {
        r.title: f"{i:02d}_{r.name}_x{comparison.scale}" for i, r in enumerate(comparison.results, start=1)
    }
    paths = save_pngs({stems[label]: img for label, img in images.items()} | {"lr_input": comparison.lr})
    gallery = [(str(paths[stems[r.title]]), cmp.caption(r)) for r in comparison.results]
    labels = list(images)
    left, right = labels[0], labels[-1]
    return (
        gallery,
        cmp.metrics_table(comparison),
        gr.Slider(value=snapped.x, maximum=w - 1),
        gr.Slider(value=snapped.y, maximum=h - 1),
        snapped.size,
        picker,
        crops,
        gr.Dropdown(choices=labels, value=left),
        gr.Dropdown(choices=labels, value=right),
        (str(paths[stems[left]]), str(paths[stems[right]])),
        [str(p) for p in paths.values()],
        _status(comparison.notices),
        comparison,
        region,
    )


def run_upscale(image: str | None, model: str, scale: int, backend: str = "bitwise",
                request: gr.Request | None = None) -> tuple[str, str]:
    """Upscale one image with one super-resolution model and return the result as a PNG file.

    The image is kept whole: transparency comes back (its alpha plane upscaled with bicubic
    interpolation), a 16-bit image comes back 16-bit, and its ICC profile and EXIF data are kept.

    Args:
        image: the image file to upscale (PNG, JPEG, WebP, TIFF, GIF or BMP); at most 65,536 pixels.
        model: the model name: "frbc" (FRB on SRResNet, the paper's binarized model), "frbt" (FRB on
            SwinIR-S), "reactnet", "btm", "bam", "irnet", "bireal", "dorefa", "bnn" (binarized),
            "srresnet", "swinir_s" (full precision) or "bicubic".
        scale: the upscaling factor, one of the scales with shipped weights (2 or 4).
        backend: "bitwise" (packed XNOR/popcount CPU kernels for the binarized models) or "torch".

    Returns:
        The upscaled PNG file and a status line (notices, or "ok").
    """
    if image is None:
        raise user_error("upload an image first", request=request)
    try:
        spec = MODELS[model]  # the model and scale inputs only take listed choices (Gradio checks)
        picture = load_picture(image, DEFAULT_MAX_PIXELS)
        h, w = picture.rgb.shape[:2]
        if h * w > cmp.MAX_LR_PIXELS:
            raise ValueError(f"the image is {w}x{h} = {h * w:,} pixels, above this demo's limit of "
                             f"{cmp.MAX_LR_PIXELS:,}; crop it, or run `python -m frb upscale` for any size")
        net, why = shared_model(model, int(scale))
        if net is None:
            raise ValueError(why)
        forward, used, notice = select_runner(net, backend)
        dst = new_run_folder() / f"{Path(image).stem}_{model}_x{int(scale)}.png"
        notes = write_upscaled(forward, picture, int(scale), None, tiling_context(net).pad, dst)
    except (ImageError, ValueError) as exc:
        raise user_error(str(exc), image, request) from None
    notices = picture.notices + notes + ([notice] if notice else [])
    return str(dst), f"{spec.title} x{int(scale)} on {used}" + ("\n" + _status(notices) if notices else "")


def move_region(comparison: cmp.Comparison | None, x: float, y: float, size: float):
    """Sliders moved: new picker and crops; the region is remembered for the next run."""
    if comparison is None:
        return gr.skip(), gr.skip(), (int(x), int(y), int(size))
    _, picker, crops = _view(comparison, x, y, size)
    return picker, crops, (int(x), int(y), int(size))


def click_region(comparison: cmp.Comparison | None, size: float, evt: gr.SelectData):
    """Click on the picker: centre the region there."""
    if comparison is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    cx, cy = evt.index
    region, picker, crops = _view(comparison, cx - size / 2, cy - size / 2, size)
    return region.x, region.y, picker, crops, (region.x, region.y, region.size)


def pick_pair(comparison: cmp.Comparison | None, left: str, right: str):
    """Dropdowns changed: the two images of the before/after slider."""
    if comparison is None:
        return gr.skip()
    images = cmp.named_images(comparison)
    if left not in images or right not in images:
        return gr.skip()
    paths = save_pngs({"left": images[left], "right": images[right]})
    return str(paths["left"]), str(paths["right"])


def load_example(name: str | None):
    return str(example_path(name)) if name else gr.skip()


# ---------------------------------------------------------------------------------------------
# Kernels and Models handlers
# ---------------------------------------------------------------------------------------------


def show_kernels(model: str, layer: str | None, scale: int = 4):
    """The /kernels endpoint: figure, error table and notice for one binary layer."""
    try:
        view = kernel_view(model, layer or None, int(scale))
    except ValueError as exc:
        raise user_error(str(exc)) from None
    shape = "x".join(map(str, view.weight_shape))
    notice = f"{view.model} · {view.layer} · weight {shape}"
    return str(save_pngs({"kernels": view.figure})["kernels"]), view.rows, notice + (f"\n• {view.notice}" if view.notice else "")


def layers_for(model: str, scale: int = 4):
    return gr.Dropdown(choices=layer_names(model, int(scale)), value=default_layer(model, int(scale)))


#: Bitwise speed-ups measured on this machine, by scale (a property of the machine: shared by sessions).
_speedups: dict[int, dict[str, float]] = {}


def show_models(scale: int):
    """The /models endpoint: the table, and the PSNR vs operations and vs size points."""
    infos = weights_infos(int(scale))
    points = model_points(int(scale), infos)
    return model_rows(int(scale), _speedups.get(int(scale)), infos), points, points


def measure_speedups(scale: int):
    """Time every binarized model with weights on the bitwise engine against its full-precision teacher
    (torch fp32) on this machine, and fill the table's speed-up column."""
    models = {}
    for name, spec in MODELS.items():
        if spec.binary:
            model, _ = shared_model(name, int(scale))
            if model is not None:
                models[name] = model
    _speedups[int(scale)] = model_speedups(models, int(scale))
    return model_rows(int(scale), _speedups[int(scale)])


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def _compare_tab() -> None:
    state = gr.State(None)  # the last Comparison
    region = gr.State(None)  # the requested crop region (x, y, size)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            image = ImageUpload(
                label="Input image (upload or paste)", type="filepath", sources=["upload", "clipboard"],
                image_mode=None, format="png", height=280,
            )
            example = gr.Dropdown(choices=list(EXAMPLES), value=None, label="…or a bundled example (scikit-image)")
            mode = gr.Radio(list(cmp.MODES), value=cmp.MODE_HR, label="Mode")
            scale = gr.Radio(offered_scales(), value=4, label="Scale")
            baseline = gr.CheckboxGroup(_choices("baseline"), value=["bicubic"], label="Baseline")
            full_precision = gr.CheckboxGroup(
                _choices("full precision"), value=[m for m in DEFAULT_METHODS if MODELS[m].group == "full precision"],
                label="Full precision",
            )
            binarized = gr.CheckboxGroup(
                _choices("binarized"), value=[m for m in DEFAULT_METHODS if MODELS[m].group == "binarized"],
                label="Binarized",
            )
            backend = gr.Radio(list(BACKENDS), value="bitwise", label="Backend for binarized models")
            fit = gr.Checkbox(value=True, label=f"Downscale inputs above {cmp.MAX_LR_PIXELS:,} LR pixels (else reject)")
            run = gr.Button("Run", variant="primary")
            status = gr.Textbox(label="Status and notices", lines=5, interactive=False, elem_id="status")
            with gr.Accordion("One model to a file (whole image: alpha, 16 bits, metadata kept)", open=False):
                one_model = gr.Dropdown([(spec.title, name) for name, spec in MODELS.items()], value="frbc",
                                        label="Model")
                one_run = gr.Button("Upscale to a PNG")
                one_file = gr.File(label="Upscaled PNG", elem_id="upscaled")
                one_status = gr.Textbox(label="Upscale status", lines=2, interactive=False, elem_id="upscale-status")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Results", format="png", columns=3, height="auto", elem_id="results")
            table = gr.Dataframe(headers=cmp.METRIC_HEADERS, label="Metrics", interactive=False, elem_id="metrics")
            with gr.Row():
                x = gr.Slider(0, 512, value=0, step=1, label="crop x (output pixels)", elem_id="crop-x")
                y = gr.Slider(0, 512, value=0, step=1, label="crop y (output pixels)", elem_id="crop-y")
                size = gr.Slider(4, 256, value=48, step=1, label="crop size (output pixels)", elem_id="crop-size")
            with gr.Row():
                picker = gr.Image(label="Region (click to move)", format="png", interactive=False, height=300,
                                  elem_id="picker", scale=1)
                crops = gr.Gallery(label="Same region, nearest-neighbour zoom", format="png", columns=4,
                                   height="auto", elem_id="crops", scale=2)
            with gr.Row():
                left = gr.Dropdown(label="Slider: left", choices=[])
                right = gr.Dropdown(label="Slider: right", choices=[])
            slider = gr.ImageSlider(label="Before / after", format="png", type="numpy")
            files = gr.File(label="Download PNGs", file_count="multiple")

    example.change(load_example, example, image, api_visibility="private")
    run.click(
        run_compare,
        [image, mode, scale, baseline, full_precision, binarized, backend, fit, region],
        [gallery, table, x, y, size, picker, crops, left, right, slider, files, status, state, region],
        api_name="compare",
    ).failure(show_error, None, status, api_visibility="private")
    one_run.click(run_upscale, [image, one_model, scale, backend], [one_file, one_status], api_name="upscale").failure(
        show_error, None, one_status, api_visibility="private"
    )
    for slider_input in (x, y, size):
        slider_input.release(move_region, [state, x, y, size], [picker, crops, region], api_visibility="private")
    picker.select(click_region, [state, size], [x, y, picker, crops, region], api_visibility="private")
    for side in (left, right):
        side.input(pick_pair, [state, left, right], slider, api_visibility="private")


def _kernels_tab(demo: gr.Blocks) -> None:
    gr.Markdown(KERNELS_INTRO)
    names = binarized_model_names()
    with gr.Row():
        model = gr.Dropdown(choices=names, value="frbc", label="Binarized model")
        scale = gr.Radio(offered_scales(), value=4, label="Scale")
        layer = gr.Dropdown(  # any model's layer names are valid API input: the handler checks them
            choices=layer_names("frbc"), value=default_layer("frbc"), label="Binary layer", allow_custom_value=True
        )
        show = gr.Button("Show")
    figure = gr.Image(label="Kernels: full precision / vanilla / FRB", show_label=False, format="png",
                      interactive=False, elem_id="kernel-figure")
    notice = gr.Textbox(label="Layer and notices", interactive=False, lines=2)
    table = gr.Dataframe(headers=TABLE_HEADERS, label="Relative weight error Σ|W − W_b| / Σ|W|", interactive=False)
    show.click(show_kernels, [model, layer, scale], [figure, table, notice], api_name="kernels")
    model.input(layers_for, [model, scale], layer, api_visibility="private").then(
        show_kernels, [model, layer, scale], [figure, table, notice], api_visibility="private"
    )
    for control in (layer, scale):
        control.input(show_kernels, [model, layer, scale], [figure, table, notice], api_visibility="private")
    demo.load(show_kernels, [model, layer, scale], [figure, table, notice], api_visibility="private")


def _models_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "Parameters (K) and operations (G multiply-accumulates) in BBCU's convention: binary weights count 1/32, "
        "binary MACs 1/64, on a 320x180 LR input. Weights: *bundled* in assets/weights, *Hub* from the local "
        "Hugging Face cache, *unavailable* (missing or damaged: the model is not run, and says why). "
        "PSNR / SSIM on Y, border = scale; the compute column adds up each model's training ledger. The bitwise "
        "speed-up (whole model, bitwise engine against its full-precision teacher in torch fp32, one 96x96 LR "
        "input) is measured on this machine when you ask: it takes about a minute on 2 vCPUs."
    )
    scale = gr.Radio(offered_scales(), value=4, label="Scale")
    table = gr.Dataframe(headers=MODEL_HEADERS, label="Models", interactive=False, elem_id="models")
    psnr = f"{BENCHMARK} PSNR (dB)"
    with gr.Row():
        by_ops = gr.ScatterPlot(x="ops G", y=psnr, color="source", tooltip=["model", "source", "ops G", psnr],
                                title=f"{BENCHMARK} PSNR vs operations (G, BBCU)", elem_id="plot-ops", height=360)
        by_size = gr.ScatterPlot(x="size KB", y=psnr, color="source", tooltip=["model", "source", "size KB", psnr],
                                 title=f"{BENCHMARK} PSNR vs size (KB, BBCU)", elem_id="plot-size", height=360)
    measure = gr.Button("Measure bitwise speed-ups on this machine")
    gr.Markdown(ablation_markdown(), elem_id="ablation")
    measure.click(measure_speedups, scale, table, api_name="speedups")
    scale.change(show_models, scale, [table, by_ops, by_size], api_name="models")
    demo.load(show_models, scale, [table, by_ops, by_size], api_visibility="private")


def build_demo() -> gr.Blocks:
    """The whole app, queued with limits that keep a 2-vCPU Space responsive (not launched)."""
    # delete_cache: uploads and served files older than an hour are removed every hour (Gradio's cache).
    with gr.Blocks(title="frb-sr: binarized super-resolution", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Compare"):
            _compare_tab()
        with gr.Tab("Kernels"):
            _kernels_tab(demo)
        with gr.Tab("Models"):
            _models_tab(demo)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return demo
