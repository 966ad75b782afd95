"""BENCHMARKS.md, rendered from the per-section result files so that re-running one section keeps the others.

Every figure comes from a results JSON written by a run; each section shows the command and machine
that produced it.
"""

import json
from pathlib import Path
from typing import Callable, Dict, List

from .plan import SECTIONS

TRIED = "tried.md"  # beside the result files: what was tried, with its figures, kept or dropped

TITLES = {
    "spectral": "Spectral step: direct vs paper solver on identical attention",
    "stages": "Pseudo-label stage: cost of the default, and seconds per tile of the attention canvas",
    "accuracy": "Accuracy against ground truth, with baselines",
    "presets": "The paper preset's settings against the default's: pseudo-labels of the same slab",
    "slabs": "Automatic slabs against random manual-style slabs of the same budget",
    "microtubules": "Real microtubule patches: how much of them the membrane pseudo-mask takes for membrane",
    "segmentation": "Segmentation throughput and peak memory",
    "peers": "Segmentation beside MemBrain-seg, same tomograms, same run",
    "dataset": "The whole chain for a data set: every stage on a 1k x 1k x 300 tomogram, and what a GPU changes",
    "mainjob": "Main job (README's first command) wall time",
}


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return str(value)


def _header(section: str, result: dict) -> List[str]:
    machine = result["machine"]
    gpu = machine.get("gpu") or "no GPU"
    lines = [f"## {TITLES[section]}", ""]
    if result.get("smoke"):
        lines += ["**Smoke run (tiny sizes): these figures check that the section runs and mean nothing.**", ""]
    return lines + [
        f"Command: `{result['command']}`",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['torch_threads']} torch threads), "
        f"{machine['memory_GiB']} GiB, {gpu}; {machine['date']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
        "",
    ]


def _spectral(r: dict) -> List[str]:
    weights = "RANDOM weights (test model)" if r["random_weights"] else "trained weights"
    return [
        f"Backbone `{r['backbone']}` ({weights}) on {r.get('device', 'cpu')}, paper solver on the same device and the "
        f"direct one on the CPU; {r['tile_px']}-px tiles, {r['layers']} self-attention layers on "
        f"grids {r['grids']}, heads {r['heads']}; {r['num_samples']} noise samples per tile; paper solver "
        f"{r['paper_iterations']} iterations; {r['tiles']} tiles, both solvers on the same captured attention.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| direct solver, s per tile (median) | {_fmt(r['direct_s_median'])} | |",
        f"| paper solver, s per tile (median) | {_fmt(r['paper_s_median'])} | |",
        f"| speed ratio paper / direct (median over tiles) | {_fmt(r['speed_ratio_median'])} | >= 20 |",
        f"| subspace agreement: mean cosine of the principal angles (mean over tiles) | {_fmt(r['agreement_mean'])} | >= 0.9 |",
        f"| subspace agreement, worst tile | {_fmt(r['agreement_min'])} | |",
        f"| paper maps' sum of Rayleigh quotients / the optimum (direct) | {_fmt(r.get('paper_rayleigh_fraction_mean'))} | |",
        "",
        f"Leading eigenvalues of the pooled operator (first tile): {', '.join(_fmt(v) for v in r.get('eigenvalues_first_tile', []))}. "
        "Where eigenvalues 2-13 are small and close together, the 12-map subspace is barely determined and two "
        "solvers can disagree on it while capturing nearly the same share of the operator.",
        *_spectral_reference(r),
        *_spectral_labels(r),
    ]


def _spectral_labels(r: dict) -> List[str]:
    """Pseudo-labels of one phantom slice from each solver's maps."""
    labels = r.get("labels")
    if not labels:
        return []
    return [
        "",
        f"The pseudo-label stage on slice {labels['slice']} of the same phantom, once per solver (same attention, same "
        "settings; truth from the phantom):",
        "",
        "| solver | membrane Dice | pseudo-points | their precision | s |",
        "|---|---|---|---|---|",
        *[
            f"| {solver} | {_fmt(row['membrane_dice'])} | {row['points']} | {_fmt(row['point_precision'])} | {_fmt(row['seconds'])} |"
            for solver, row in labels["rows"].items()
        ],
        "",
        f"Dice between the two solvers' membrane masks on that slice: {_fmt(labels['mask_dice_between_solvers'])}.",
    ]


REFERENCE_ATTENTION = {
    "local": "local: every token attends to a Gaussian neighbourhood (sigma = 1/16 of the grid)",
    "regions": "regions: tokens attend to their own region of a 12-region partition",
}


def _spectral_reference(r: dict) -> List[str]:
    """Both solvers on attention whose 12-map subspace is well determined, beside the backbone's own."""
    if not r.get("reference"):
        return []
    first = r["per_tile"][0]
    rows = [(f"backbone `{r['backbone']}`, first tile", first)]
    rows += [(f"{REFERENCE_ATTENTION[ref['attention']]}, {ref['grid']} x {ref['grid']}", ref) for ref in r["reference"]]
    return [
        "",
        "Same solvers, same settings, same run, on synthetic attention with a known spectrum (three layers, two "
        "noise samples; `cryodiffseg/benchmark/operators.py`):",
        "",
        "| attention | eigenvalues 1, 2, 12, 13 | agreement | paper maps' Rayleigh share | paper / direct time |",
        "|---|---|---|---|---|",
        *[
            f"| {label} | {', '.join(_fmt(row['eigenvalues'][i]) for i in (0, 1, 11, 12))} | {_fmt(row['agreement'])} | "
            f"{_fmt(row['paper_rayleigh_fraction'])} | {_fmt(row['paper_s'] / row['direct_s'])} |"
            for label, row in rows
        ],
    ]


def _stages(r: dict) -> List[str]:
    lines = []
    default = r.get("default")
    if default:
        z, y, x = default["shape_zyx"]
        lines += [
            f"The default pseudo-label stage (membranes from sheet evidence, particles from blob evidence; no model) "
            f"on a {x} x {y} x {z} float32 tomogram (timing only: noise), `cryodiffseg pseudolabel` in a child process, "
            "one run per slab in the tomogram's middle:",
            "",
            "| slab | wall time | s per 512 x 512 px of labelled slice | peak resident memory |",
            "|---|---|---|---|",
            *[f"| {row['slab_slices']} slices | {_fmt(row['wall_s'])} s | {_fmt(row['s_per_512_patch'])} | {_fmt(row['peak_rss_GiB'])} GiB |"
              for row in default["rows"]],
            "",
            "The attention canvas (`--membranes` or `--particles` attention or both), per tile:",
            "",
        ]
    for row in r["rows"]:
        lines += [
            f"Backbone `{row['backbone']}` ({row['weights']}), {row['tile_px']}-px tile, {row['num_samples']} noise "
            f"samples, median of {row['repeats']} runs:",
            "",
            "| stage | s per tile |",
            "|---|---|",
            *[f"| {stage} | {_fmt(seconds)} |" for stage, seconds in row["seconds_per_tile"].items()],
            f"| **total** | **{_fmt(row['total_s_per_tile'])}** |",
            "",
        ]
        if "tiles_per_512_patch" in row:
            lines += [f"In the default tiling of a 2048 x 2048 slice, 512 x 512 px of slice take "
                      f"{_fmt(row['tiles_per_512_patch'])} such tiles: **{_fmt(row['total_s_per_512_patch'])} s per "
                      "512 x 512 patch**.", ""]
    return lines


def _accuracy(r: dict) -> List[str]:
    lines = [
        f"Training: membrane U-Net {r['membrane_iterations']} iterations, picker {r['picker_iterations']} iterations "
        f"(the engine's CPU defaults). Shared data: {r['shared_data'] or 'absent: only generated tomograms were used'}.",
        "",
    ]
    for data in r["datasets"]:
        labels_column = any("pick_f1_labels" in row["mean"] for row in data["rows"])
        lines += [
            f"### {data['dataset']}",
            "",
            f"{data['description']}. Slab {data['slab']} of the first tomogram ({data['slab_slices']} of "
            f"{data['depth']} slices) is the only input labelled (pseudo or true); every tomogram is segmented and "
            f"picked. Dice/IoU are volumetric means over the tomograms; per-slice Dice is the paper's measure "
            f"(empty/empty = 1); picks match one-to-one within {data['match_radius_voxels']:.1f} voxels (half a ribosome).",
            *[f"Ground truth: {note}." for note in data.get("truth_notes", [])],
            "",
            "| method | membrane Dice | per-slice Dice | IoU | pick P | pick R | pick F1 |"
            + (" pick F1 (labels.mrc ribosomes) |" if labels_column else "")
            + " Dice / supervised | pseudo-label Dice on the slab | pseudo-points (precision) |",
            "|---|---|---|---|---|---|---|" + ("---|" if labels_column else "") + "---|---|---|",
        ]
        for row in data["rows"]:
            mean = row["mean"]
            pseudo = row.get("pseudolabel_membrane", {}).get("dice")
            points = row.get("pseudopoints")
            method = row["method"] + (" **(random weights)**" if row.get("random_weights") else "")
            lines.append(
                f"| {method} | {_fmt(mean.get('dice'))} | {_fmt(mean.get('per_slice_mean_dice'))} | {_fmt(mean.get('iou'))} | "
                f"{_fmt(mean.get('pick_precision'))} | {_fmt(mean.get('pick_recall'))} | {_fmt(mean.get('pick_f1'))} | "
                + (f"{_fmt(mean.get('pick_f1_labels'))} | " if labels_column else "")
                + f"{_fmt(row.get('dice_ratio_to_supervised'))} | {_fmt(pseudo)} | "
                f"{(str(points['count']) + ' (' + _fmt(points['precision']) + ')') if points else '-'} |"
            )
        lines.append("")
        if data.get("targets"):
            lines += [
                "The default configuration (first row) against its targets on this data set:",
                "",
                "| measure | value | target | met |",
                "|---|---|---|---|",
                *[f"| {t['measure']} | {_fmt(t['value'])} | >= {_fmt(t['target'])} | {'yes' if t['met'] else '**no**'} |" for t in data["targets"]],
                "",
            ]
        lines += _picks_judged(data)
        cut_rows = [row for row in data["rows"] if "pick_f1_by_threshold" in row["mean"]]
        if cut_rows:
            thresholds = list(cut_rows[0]["mean"]["pick_f1_by_threshold"])
            lines += [
                "Pick F1 (mean over the tomograms) with the same picks cut at fixed score thresholds instead of each "
                "picker's calibrated one (the table above):",
                "",
                "| method | " + " | ".join(f"F1 at {t}" for t in thresholds) + " |",
                "|---|" + "---|" * len(thresholds),
                *[f"| {row['method']} | " + " | ".join(_fmt(row["mean"]["pick_f1_by_threshold"][t]) for t in thresholds) + " |"
                  for row in cut_rows],
                "",
            ]
    return lines


def _picks_judged(data: dict) -> List[str]:
    """Per picker and tomogram: its threshold, and the picks' average against random positions' average."""
    rows = []
    for row in data["rows"]:
        for name, scores in row.get("tomograms", {}).items():
            picks = scores.get("particles", {})
            if "picks_average" not in picks:
                continue
            mine, random = picks["picks_average"] or {}, picks.get("random_average") or {}
            rows.append(f"| {row['method']} | {name} | {_fmt(picks.get('threshold'))} | {mine.get('boxes', 0)} | "
                        f"{_fmt(mine.get('centre_contrast'))} / {_fmt(random.get('centre_contrast'))} | "
                        f"{_fmt(mine.get('fsc_low_shells'))} / {_fmt(random.get('fsc_low_shells'))} |")
    points = [(row["method"], row["pseudopoints"]) for row in data["rows"] if row.get("pseudopoints")]
    lines = []
    if rows:
        lines += [
            "Picks as a user judges them (`cryodiffseg pick` writes the figures): the calibrated threshold, and the "
            "average of the subvolumes at the picks against the average at as many random positions (centre "
            "contrast; mean half-set FSC over Fourier shells 1-7):",
            "",
            "| method | tomogram | threshold | boxes | centre contrast: picks / random | FSC shells 1-7: picks / random |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    if points:
        lines += [
            "Pseudo-points (cutting the slab; training) and held-out points (beyond it; the threshold's calibration): "
            "how many, and the share that are true particles:",
            "",
            "| method | pseudo-points | precision | held-out points | precision |",
            "|---|---|---|---|---|",
            *[f"| {method} | {p.get('pseudo', p).get('count', p.get('count'))} | {_precisions(p.get('pseudo', p))} | "
              f"{p.get('calibration', {}).get('count', '-')} | {_precisions(p.get('calibration', {}))} |" for method, p in points],
            "",
        ]
    return lines


def _precisions(scores: dict) -> str:
    if "precision_labels" in scores:
        return f"{_fmt(scores.get('precision'))} (labels.mrc ribosomes: {_fmt(scores['precision_labels'])})"
    return _fmt(scores.get("precision"))


def _presets(r: dict) -> List[str]:
    solver = (f"Paper solver: {r['paper_iterations']} iterations." if r["paper_iterations"] else
              "The preset's own solver did not run (`--with-paper` adds it: about 2 min per 128-px tile on 2 cores, "
              "16 tiles per data set; the spectral section compares its maps with the direct solver's).")
    lines = [
        "Pseudo-labels only (no training), on the slab the accuracy section labels. The preset's own backbone "
        "(SD v1.4) cannot be downloaded here: every row runs the shipped compact backbone, and the watershed "
        "where the preset asks for CellPose (its weights are absent). The sign rows re-sign the cached eigen-maps "
        "of the direct-solver row and rebuild everything after them: whether the sign convention matters. " + solver,
        "",
    ]
    for data in r["datasets"]:
        lines += [f"**{data['dataset']}**, slab {data['slab']} of the first tomogram ({data['slab_slices']} slices).", "",
                  "| setting | membrane Dice | precision | recall | per-slice Dice | pseudo-points (precision) | labelled slices | s |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in data["rows"]:
            m, points = row["membrane"], row.get("points")
            shown = f"{points['count']} ({_precisions(points)})" if points else "-"
            lines.append(f"| {row['method']} | {_fmt(m['dice'])} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | "
                         f"{_fmt(m['per_slice_mean_dice'])} | {shown} | {row['labelled_slices']} | {_fmt(row['seconds'])} |")
        lines.append("")
    return lines


def _slabs(r: dict) -> List[str]:
    lines = [
        "The accuracy section's chain (default pseudo-labels, the same U-Net and picker, "
        f"{r['membrane_iterations']} / {r['picker_iterations']} iterations) trained on the slabs chosen by "
        f"`select-slabs` with the same budget of labelled slices over the data set's tomograms (seeds {', '.join(map(str, r.get('seeds', [0])))}: the automatic "
        f"figure is their median), and on each of {r['choices']} seeded random manual-style "
        "slabs of the same length (a random tomogram, a random range in the middle 80% of its depth); final "
        "membrane Dice and pick F1 are means over every tomogram of the data set.",
        "",
    ]
    for data in r["datasets"]:
        lines += [f"**{data['dataset']}**, {data['slices_per_slab']} slices per slab; automatic ({data.get('automatic_slabs', '1 slab')}): "
                  f"{data['automatic_why']}", "",
                  "| measure | automatic: median | automatic: worst | random: median | random: worst | random: best | random choices below the automatic median |",
                  "|---|---|---|---|---|---|---|"]
        for key, name in (("dice", "final membrane Dice"), ("pick_f1", "pick F1"), ("pick_f1_labels", "pick F1 (labels.mrc ribosomes)")):
            if key in data["summary"]:
                s = data["summary"][key]
                lines.append(f"| {name} | {_fmt(s['automatic'])} | {_fmt(s.get('automatic_worst'))} | {_fmt(s['random_median'])} | {_fmt(s['random_worst'])} | "
                             f"{_fmt(s['random_best'])} | {s['random_below_automatic']} of {s['random']} |")
        labelled = any(row.get("pick_f1_labels") is not None for row in data["rows"])
        lines += ["", "| choice | tomogram | slab | final membrane Dice | pick F1 |" + (" pick F1 (labels.mrc ribosomes) |" if labelled else ""),
                  "|---|---|---|---|---|" + ("---|" if labelled else "")]
        lines += [f"| {row['choice']} | {row['tomogram']} | {row['slab']} | {_fmt(row['dice'])} | {_fmt(row['pick_f1'])} |"
                  + (f" {_fmt(row.get('pick_f1_labels'))} |" if labelled else "") for row in data["rows"]]
        lines.append("")
    return lines


def _microtubules(r: dict) -> List[str]:
    if not r["rows"]:
        return [f"Data absent ({r['absent']}): not measured.", ""]
    lines = [
        f"Membrane pseudo-masks of the middle 8 slices of each patch at {r['voxel_size_A']} A/voxel against the "
        "microtubule mask on those slices. Microtubules are not membranes: recall here is the share of the "
        "microtubules taken for membrane.",
        "",
        "| membrane source | patch | Dice | recall | precision | microtubule fraction | pseudo-mask fraction |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['backbone']} | {row['patch']} | {_fmt(row['dice'])} | {_fmt(row['recall'])} | "
                     f"{_fmt(row['precision'])} | {_fmt(row['microtubule_fraction'])} | {_fmt(row['pseudo_fraction'])} |")
    return lines + [""]


def _segmentation(r: dict) -> List[str]:
    z, y, x = r["large_shape_zyx"]
    tz = r["thin_shape_zyx"][0]
    return [
        "The reference membrane U-Net (random weights: speed does not depend on them), `cryodiffseg segment` "
        "in a child process on a memory-mapped float32 MRC.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| volume | {x} x {y} x {z} voxels, {_fmt(r['input_GiB'])} GiB |",
        f"| wall time, one run | {_fmt(r['large_wall_s'])} s |",
        f"| throughput, that run | {_fmt(float(r['large_voxels_per_s']))} voxels/s |",
        f"| peak resident memory | {_fmt(r['peak_rss_GiB'])} GiB |",
        f"| peak memory / input size | {_fmt(r['peak_rss_over_input'])} |",
        f"| throughput, median of {r['repeats']} runs on {x} x {y} x {tz} | {_fmt(float(r['thin_voxels_per_s_median']))} voxels/s |",
    ]


def _peers(r: dict) -> List[str]:
    lines = [
        "`cryodiffseg segment` (the reference 2-D U-Net) and MemBrain-seg's own `segment` (its 3-D U-Net"
        + (f", {r['peer']}, installed from PyPI into its own environment" if r["peer"] else ": not run this time")
        + "), both with random weights (speed does "
        "not depend on them), each in a child process whose own peak resident memory the kernel reports. The "
        "peer's one pass is `--no-test-time-augmentation`; its default repeats it 8 times, mirrored. Where the peer "
        "ran only its first sliding windows (its whole run would take hours here), its pass is its time before "
        "the first window plus every window at the median window time, and its peak memory a lower bound "
        "(its whole-volume buffers are allocated before the first window).",
        "",
        "| tomogram | ours: wall s | ours: peak GiB (minus input) | peer one pass: s | peer default (8 passes): s | "
        "peer windows run / all | peer peak GiB | throughput ratio, one pass (default) | memory ours / peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        z, y, x = row["shape_zyx"]
        ours, peer = row["ours"], row["peer"]
        head = f"| {row['tomogram']} ({x} x {y} x {z}, {_fmt(row['input_GiB'])} GiB) | {_fmt(ours['wall_s'])} | " \
               f"{_fmt(ours['peak_rss_GiB'])} ({_fmt(row['ours_peak_minus_input_GiB'])}) |"
        if peer is None:
            lines.append(head + " not run | - | - | - | - | - |")
            continue
        estimated = "" if peer["complete"] else " (extrapolated)"
        lines.append(head + f" {_fmt(peer['one_pass_s'])}{estimated} | {_fmt(peer['default_8_passes_s'])} | "
                     f"{peer['windows_run']} / {peer['windows_expected']} | {_fmt(peer['peak_rss_GiB'])}"
                     f"{' (at least)' if peer['peak_is_lower_bound'] else ''} | {_fmt(row['throughput_ratio_one_pass'])} "
                     f"({_fmt(row['throughput_ratio_peer_default'])}) | {_fmt(row['memory_ratio'])} |")
    return lines + [""]


def _dataset(r: dict) -> List[str]:
    z, y, x = r["shape_zyx"]
    lines = [
        f"Each stage is its engine command with its defaults, in a child process, on one {x} x {y} x {z} tomogram "
        f"(a {r.get('simulated_side', 256)}-px-wide simulation mirrored to that width: content, not noise). The GPU "
        "column is computed, not measured: the networks' floating-point operations are counted on the shapes each "
        "stage feeds them, their CPU seconds are those of the same calls timed here, the rest of the stage is "
        f"taken as unchanged and the networks run at an assumed {_fmt(r['gpu_tflops_assumed'])} TFLOP/s sustained.",
        "",
        "| stage | paid once per | wall s (2 CPU cores) | peak GiB | network TFLOP | network s on CPU | rest s | GPU s (computed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['stage']} | {row['paid_per']} | {_fmt(row['wall_s'])} | {_fmt(row['peak_rss_GiB'])} | "
                     f"{_fmt(row['network_tflop'])} | {_fmt(row['network_cpu_s'])} | {_fmt(row['rest_s'])} | {_fmt(row['gpu_estimate_s'])} |")
    cpu, gpu = r["totals"]["wall_s"], r["totals"]["gpu_estimate_s"]
    lines += [
        "",
        "| data set | once (pseudo-labels, training) | per tomogram (segment, pick) | "
        f"{r['tomograms']} tomograms |",
        "|---|---|---|---|",
        f"| 2 CPU cores, measured | {_fmt(cpu['once_s'])} s | {_fmt(cpu['per_tomogram_s'])} s | {_fmt(cpu['data_set_h'])} h |",
        f"| GPU, computed | {_fmt(gpu['once_s'])} s | {_fmt(gpu['per_tomogram_s'])} s | {_fmt(gpu['data_set_h'])} h |",
    ]
    return lines


def _mainjob(r: dict) -> List[str]:
    return [
        f"`{r['command']}` run {r['repeats']} times (in one process, after imports).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| wall time, median | {_fmt(r['wall_s_median'])} s |",
        f"| all runs | {', '.join(_fmt(w) for w in r['wall_s'])} s |",
        *[f"| stage: {stage} (first run) | {_fmt(s)} s |" for stage, s in r["stages_s_first_run"].items()],
    ]


RENDERERS: Dict[str, Callable[[dict], List[str]]] = {
    "spectral": _spectral,
    "stages": _stages,
    "accuracy": _accuracy,
    "presets": _presets,
    "slabs": _slabs,
    "microtubules": _microtubules,
    "segmentation": _segmentation,
    "peers": _peers,
    "dataset": _dataset,
    "mainjob": _mainjob,
}


def _tried(path: Path) -> List[str]:
    """The log of every idea measured, kept or dropped (hand-written beside the results)."""
    return [path.read_text().rstrip(), ""] if path.is_file() else []


def render_report(results_dir: Path) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `cryodiffseg bench` from the result files in `benchmarks/results/`; every figure below "
        "was measured by the command shown with it, on the machine named there. How the engine meets broken "
        "inputs, full disks and killed runs (the bad-input matrix of the tests) is in RELIABILITY.md.",
        "",
    ]
    for section in SECTIONS:
        path = Path(results_dir) / f"{section}.json"
        if path.is_file():
            result = json.loads(path.read_text())
            lines += _header(section, result) + RENDERERS[section](result["result"]) + [""]
    lines += _tried(Path(results_dir) / TRIED)
    return "\n".join(lines).rstrip() + "\n"
