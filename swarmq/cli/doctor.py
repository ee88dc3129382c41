"""`swarmq doctor`: whether the installed llama-cpp-python runs on this CPU, and the line that fixes it."""

from __future__ import annotations

from typing import Annotated

import typer

from swarmq.cli.common import Out, err, out, print_json


def doctor(format: Annotated[Out, typer.Option("--format", help="table or json")] = Out.table) -> None:
    """Check the installed llama-cpp-python build against this CPU: instructions it lacks (exit 5, with the
    reinstall line) or a native build that runs only on CPUs like this one (a warning)."""
    from swarmq.model.build import CPUINFO_FLAG, check_build, native_warning, require_runnable

    check = check_build()
    if format is Out.json:
        print_json(
            {
                "llama_cpp_python": check.version,
                "features": sorted(check.features),
                "missing": list(check.missing),
                "beyond_portable": list(check.beyond_portable),
            }
        )
    require_runnable(check)
    if format is Out.json:
        return
    built = ", ".join(sorted(f for f in check.features if f in CPUINFO_FLAG)) or "no x86 instruction set"
    out.print(f"llama-cpp-python {check.version}: built for {built}; runs on this CPU", markup=False)
    if (warning := native_warning(check)) is not None:
        err.print(warning, markup=False, soft_wrap=True)
    else:
        out.print("portable build (nothing newer than AVX2, BMI2, FMA, F16C)")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
