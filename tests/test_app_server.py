"""The app served on loopback, called with gradio_client: PNG outputs, errors, concurrency."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from frb import compare as cmp
from frb.kernel_view import kernel_view
from frb.hub import resolve

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    rng = np.random.default_rng(1)
    img = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("in") / "input.png"
    Image.fromarray(img).save(path)
    return path, img


def client(url: str):
    return gradio_client.Client(url, verbose=False)


def call_compare(c, path, binarized=("frbc",), mode=cmp.MODE_HR):
    return c.predict(
        gradio_client.handle_file(str(path)), mode, 4, ["bicubic"], [], list(binarized), "bitwise", True,
        api_name="/compare",
    )


def read_png(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    return np.asarray(Image.open(path).convert("RGB"))


def test_compare_outputs_are_png_and_pixel_exact(url, image_file):
    path, img = image_file
    out = call_compare(client(url), path)
    gallery, table, crops, files, status = out[0], out[1], out[6], out[10], out[11]
    expected = cmp.compare(img, ["bicubic", "frbc"], cmp.MODE_HR, 4, "bitwise")
    assert [item["caption"].split(" · ")[0] for item in gallery] == ["Bicubic", "FRBC (FRB on SRResNet)"]
    for item, result in zip(gallery, expected.results):
        assert np.array_equal(read_png(item["image"]), result.image)
    region = cmp.default_region(expected)
    for item, (crop, caption) in zip(crops, cmp.crops(expected, region)):
        assert item["caption"] == caption and np.array_equal(read_png(item["image"]), crop)
    assert len(files) == 4 and all(read_png(f).ndim == 3 for f in files)
    assert [row[0] for row in table["data"]] == ["Bicubic", "FRBC (FRB on SRResNet)"]
    assert ("no trained weights bundled for frbc x4" in status) == (resolve("frbc", 4).source == "none")


def test_kernels_endpoint_is_pixel_exact(url):
    figure, table, notice = client(url).predict("frbc", "body.0.conv1", 4, api_name="/kernels")
    view = kernel_view("frbc", "body.0.conv1", 4)
    assert np.array_equal(read_png(figure), view.figure)
    assert table["data"][0] == view.rows[0] and notice.startswith("frbc · body.0.conv1")
    layer = "layers.0.residual_group.blocks.0.attn.qkv"  # another model's layer, not in the initial choices
    figure, table, notice = client(url).predict("frbt", layer, 4, api_name="/kernels")
    assert np.array_equal(read_png(figure), kernel_view("frbt", layer, 4).figure)


def test_errors_arrive_as_exceptions(url, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    c = client(url)
    with pytest.raises(Exception, match="not an image"):
        call_compare(c, text)
    with pytest.raises(Exception, match="no binary layer"):
        c.predict("frbc", "conv_first", 4, api_name="/kernels")
    # the server keeps serving after errors
    assert call_compare(c, image_file_path(tmp_path), binarized=())[0]


def image_file_path(tmp_path) -> str:
    path = tmp_path / "small.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(path)
    return str(path)


def test_four_concurrent_clients(url, image_file):
    path, _ = image_file

    def one(_):
        return call_compare(client(url), path, binarized=(), mode=cmp.MODE_LR)[0]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    assert all(len(g) == 1 and read_png(g[0]["image"]).shape == (160, 192, 3) for g in results)


def test_identical_concurrent_requests_arrive_whole(url):
    """Eight clients ask for the same kernel view at once; every figure arrives whole and exact. (Gradio
    rewrites an array's cached PNG in place while serving it: 4 of 128 such calls came cut short.)"""
    expected = kernel_view("frbc", "body.0.conv1", 4).figure

    def one(_):
        return client(url).predict("frbc", "body.0.conv1", 4, api_name="/kernels")[0]

    with ThreadPoolExecutor(8) as pool:
        figures = list(pool.map(one, range(32)))
    assert all(np.array_equal(read_png(figure), expected) for figure in figures)


def test_upscale_endpoint_returns_the_image_whole(url, tmp_path):
    from frb.models import create_model
    from frb.picture import load_picture
    from frb.upscale import upscale_bands

    rgba = np.dstack([(np.random.default_rng(2).random((30, 36, 3)) * 255).astype(np.uint8),
                      np.full((30, 36), 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut-out.png")
    path, status = client(url).predict(gradio_client.handle_file(str(tmp_path / "cut-out.png")), "bicubic", 2, "torch",
                                       api_name="/upscale")
    assert status == "Bicubic x2 on torch"
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    expected = np.concatenate(list(upscale_bands(create_model("bicubic", 2), load_picture(tmp_path / "cut-out.png", None),
                                                 2, None, 2)))
    assert np.array_equal(np.asarray(Image.open(path)), expected) and expected.shape == (60, 72, 4)


@pytest.mark.parametrize(
    "model, scale, size, message",
    [
        ("frbc", 3, 16, r"3 .* is not in the list of choices: \[2, 4\]"),  # only scales with weights
        ("nope", 2, 16, "nope is not in the list of choices"),
        ("bicubic", 2, 300, "above this demo's limit of 65,536"),
    ],
)
def test_upscale_endpoint_refuses_with_a_message(url, tmp_path, model, scale, size, message):
    Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(tmp_path / "in.png")
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        client(url).predict(gradio_client.handle_file(str(tmp_path / "in.png")), model, scale, "bitwise",
                            api_name="/upscale")


def test_the_endpoints_are_mcp_tools(url):
    import json
    import urllib.request

    with urllib.request.urlopen(url + "gradio_api/mcp/schema", timeout=30) as response:
        tools = {tool["name"]: tool for tool in json.load(response)}
    names = set(tools)
    assert any(n.endswith("upscale") for n in names) and any(n.endswith("compare") for n in names), names
    upscale = next(tool for name, tool in tools.items() if name.endswith("upscale"))
    assert "Upscale one image with one super-resolution model" in upscale["description"]
    assert {"image", "model", "scale", "backend"} <= set(upscale["inputSchema"]["properties"])
