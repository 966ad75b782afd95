"""``cryodiffseg bench``: measure, store the results, and render BENCHMARKS.md."""

import shlex
import sys


def register(commands) -> None:
    from ..benchmark.plan import SECTIONS

    parser = commands.add_parser(
        "bench",
        help="run benchmarks and write BENCHMARKS.md",
        description="Run the selected benchmark sections, store each result as JSON in --results, and render "
        "--report from every stored result (sections not re-run keep their previous figures). Data under "
        "--data (the simulated tomograms and microtubule patches) are used when present; generated "
        "tomograms always.",
    )
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from: {', '.join(SECTIONS)}")
    parser.add_argument("--results", default="benchmarks/results", help="folder of result JSON files")
    parser.add_argument("--report", default="BENCHMARKS.md", help="markdown report to write")
    parser.add_argument("--work", default="benchmarks/work", help="scratch folder for the runs' files")
    parser.add_argument("--data", default=None, help="evaluation data folder (default: ../shared/data beside the repository)")
    parser.add_argument("--backbone", default="compact", help="trained backbone to measure")
    parser.add_argument("--with-paper", action="store_true", help="also run the paper solver in the accuracy and presets sections (slow on a CPU)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every section runs, measures nothing useful")
    parser.set_defaults(run=run)


def run(args) -> None:
    import dataclasses
    from pathlib import Path

    from ..benchmark.plan import SECTIONS, BenchPlan, smoke_plan
    from ..benchmark.report import render_report
    from ..benchmark.runner import run_section
    from ..errors import CryoDiffSegError
    from ..tomoio import write_text

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown or not sections:
        raise CryoDiffSegError(f"Unknown benchmark section(s) {', '.join(sorted(unknown)) or '(none)'}: use {', '.join(SECTIONS)}.")
    plan = smoke_plan(args.data or BenchPlan().data_root) if args.smoke else BenchPlan()
    if args.data and not args.smoke:
        plan = dataclasses.replace(plan, data_root=Path(args.data))
    plan = dataclasses.replace(plan, with_paper_variant=args.with_paper, results=Path(args.results))
    command = "cryodiffseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for section in sections:
        run_section(section, plan, args.backbone, Path(args.work), command, smoke=args.smoke)
    write_text(args.report, render_report(Path(args.results)))
    print(f"report: {args.report}")
