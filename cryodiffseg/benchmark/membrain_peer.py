"""MemBrain-seg's own `segment` on one tomogram, timed window by window: run with MemBrain-seg's Python.

The peers benchmark runs this file in MemBrain-seg's virtual environment (it imports nothing of cryodiffseg).
The network has random weights (speed does not depend on them; the trained ones need a download) and runs
one pass, as `membrain segment --no-test-time-augmentation` does: its default repeats it 8 times, mirrored.
``--max-windows K`` stops after K sliding windows, for tomograms whose whole run would take hours: the full
volume's buffers are allocated before the first window, so the peak memory is already reached.
Prints one JSON line: windows run and expected, seconds per window, seconds before the first window.
"""

import argparse
import json
import math
import time


class EnoughWindows(Exception):
    """Raised by the timed network once it has run the windows asked for."""


def expected_windows(shape, roi: int, overlap: float) -> int:
    """Sliding windows of ``roi`` per axis at a stride of ``roi * (1 - overlap)`` (one where the axis is shorter)."""
    stride = int(roi * (1 - overlap))
    return math.prod(1 if size <= roi else math.ceil((size - roi) / stride) + 1 for size in shape)


def random_checkpoint(path: str) -> None:
    """A checkpoint of MemBrain-seg's default network with random weights, loadable by its `segment`."""
    import pytorch_lightning
    import torch
    from membrain_seg.segmentation.networks.inference_unet import PreprocessedSemanticSegmentationUnet

    torch.manual_seed(0)
    model = PreprocessedSemanticSegmentationUnet()
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": {},
                "pytorch-lightning_version": pytorch_lightning.__version__}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tomogram")
    parser.add_argument("--work", required=True, help="folder for the checkpoint and the peer's output")
    parser.add_argument("--max-windows", type=int, default=0, help="stop after this many windows (0: run all)")
    args = parser.parse_args()

    import mrcfile
    from membrain_seg.segmentation import segment as segment_module
    from membrain_seg.segmentation.networks.inference_unet import PreprocessedSemanticSegmentationUnet

    checkpoint = f"{args.work}/random-weights.ckpt"
    random_checkpoint(checkpoint)
    with mrcfile.mmap(args.tomogram, permissive=True) as mrc:
        shape = mrc.data.shape
    windows = []
    started = time.perf_counter()
    network = PreprocessedSemanticSegmentationUnet.forward

    def timed(self, x):
        if args.max_windows and len(windows) >= args.max_windows:
            raise EnoughWindows
        begin = time.perf_counter()
        result = network(self, x)
        windows.append((begin, time.perf_counter()))
        return result

    PreprocessedSemanticSegmentationUnet.forward = timed
    try:
        segment_module.segment(args.tomogram, checkpoint, f"{args.work}/out", test_time_augmentation=False)
        complete = True
    except EnoughWindows:
        complete = False
    finished = time.perf_counter()
    durations = sorted(end - begin for begin, end in windows)
    print(json.dumps({
        "shape_zyx": list(shape),
        "complete": complete,
        "windows_run": len(windows),
        "windows_expected": expected_windows(shape, 160, 0.5),
        "s_per_window_median": durations[len(durations) // 2] if durations else None,
        "s_before_first_window": windows[0][0] - started if windows else None,
        "s_after_last_window": finished - windows[-1][1] if windows and complete else None,
        "wall_s": finished - started,
    }))


if __name__ == "__main__":
    main()
