# Recovery that loses nothing. A summary table damaged since it was written is set aside (kept as
# <name>.damaged) when the workflow starts, so that it is rebuilt. The tables and reports a run
# regenerates are copied aside before any job starts (Snakemake deletes a job's outputs before it
# runs it); if the run fails, each one it could not regenerate is put back.

import shutil

from lth.store.summary import damaged_tables

for _name in EXPERIMENTS:
    for _path, _why in damaged_tables(PLANS[_name].layout.root):
        _path.replace(f"{_path}.damaged")
        print(
            f"lth: {_path} was damaged ({_why}): kept as {_path}.damaged; it is rebuilt",
            file=sys.stderr,
        )


def derived_files():
    """The files a run regenerates from finished runs: the tables and the reports."""
    return [
        p
        for name in EXPERIMENTS
        for p in (
            summary_csv(name),
            PATTERNS["layer_density"].format(exp=name),
            report_html(name),
        )
    ]


onstart:
    for _f in derived_files():
        if Path(_f).is_file():
            shutil.copy2(_f, f"{_f}.previous")


onerror:
    for _f in derived_files():
        if not Path(_f).exists() and Path(f"{_f}.previous").exists():
            Path(f"{_f}.previous").replace(_f)
            print(
                f"lth: kept the previous {_f}: it could not be regenerated (see the error above)",
                file=sys.stderr,
            )


onsuccess:
    for _f in derived_files():
        Path(f"{_f}.previous").unlink(missing_ok=True)
