"""``cryodiffseg bench``: measure, store the results, and render BENCHMARKS.md."""

import shlex
import sys


def register(commands) -> None:
    parser = commands.add_parser(
        "bench",
        help="run benchmarks and write BENCHMARKS.md",
        description="Run the selected benchmark sections, store each result as JSON in --results, and render "
        "--report from every stored result (sections not re-run keep their previous figures).",
    )
    parser.add_argument("--sections", default="spectral", help="comma-separated: spectral")
    parser.add_argument("--results", default="benchmarks/results", help="folder of result JSON files")
    parser.add_argument("--report", default="BENCHMARKS.md", help="markdown report to write")
    parser.add_argument("--backbone", default="compact", help="backbone for the feature benchmarks")
    parser.add_argument("--random-weights", action="store_true", help="mark the backbone as an untrained test model")
    parser.add_argument("--tiles", type=int, default=3, help="tiles measured (spectral)")
    parser.add_argument("--paper-iterations", type=int, default=2000, help="paper solver iterations (spectral)")
    parser.set_defaults(run=run)


def run(args) -> None:
    from pathlib import Path

    from ..benchmark.machine import machine_summary
    from ..benchmark.report import SECTION_ORDER, render_report
    from ..errors import CryoDiffSegError
    from ..records import write_json
    from ..tomoio import write_text

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTION_ORDER)
    if unknown:
        raise CryoDiffSegError(f"Unknown benchmark section(s) {', '.join(sorted(unknown))}: use {', '.join(SECTION_ORDER)}.")
    command = "cryodiffseg " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("cryodiffseg") else "cryodiffseg bench"
    results = Path(args.results)
    for section in sections:
        if section == "spectral":
            from ..benchmark.spectral import SpectralBenchConfig, run_spectral_bench

            result = run_spectral_bench(
                SpectralBenchConfig(backbone=args.backbone, tiles=args.tiles, paper_iterations=args.paper_iterations, random_weights=args.random_weights)
            )
        write_json(results / f"{section}.json", {"command": command, "machine": machine_summary(), "result": result})
    write_text(args.report, render_report(results))
    print(f"report: {args.report}")
