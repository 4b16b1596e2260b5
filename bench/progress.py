"""Console output of a sweep: rich progress bars (cells, epochs, ETA) and a summary table."""
from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class RichReporter:
    """Receives the runner's events; two bars: cells of the sweep and epochs of the cell."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=console, transient=False)

    def start(self, total: int, done: int, epochs: int) -> None:
        self.epochs = epochs
        self.workers: dict[str, object] = {}  # run_id -> progress task of a cell in another process
        self.progress.start()
        self.cells = self.progress.add_task("cells", total=total, completed=done)
        self.epoch_task = self.progress.add_task("epochs", total=epochs, visible=False)

    def cell_started(self, spec) -> None:
        """Only the in-process executor reports cell starts and epochs."""
        self.current, self.first_epoch = spec.run_id, True
        self.progress.update(self.cells, description=f"cells [dim]{spec.run_id}[/]")
        self.progress.reset(self.epoch_task, total=self.epochs, visible=True, description="epochs")

    def epoch_done(self, epoch: int, row: dict) -> None:
        if self.first_epoch and epoch:
            self.resumed(self.current, epoch)
            self.progress.update(self.epoch_task, completed=epoch)
        self.first_epoch = False
        self.progress.update(self.epoch_task, advance=1,
                             description=f"epochs loss {row['loss']:.3f} val-mse {row['val_mse']:.3f}")

    def resumed(self, run_id: str, epoch: int) -> None:
        self.progress.console.print(f"[cyan]resumed[/] {run_id} from epoch {epoch} of {self.epochs} (its checkpoint)")

    def workers_progress(self, running: dict[str, dict]) -> None:
        """Per-epoch progress of cells running in worker processes, Ray tasks or SLURM jobs
        (read from their claims): one bar per running cell."""
        for run_id in [r for r in self.workers if r not in running]:
            self.progress.remove_task(self.workers.pop(run_id))
        for run_id, p in running.items():
            text = f"[dim]{run_id}[/] loss {p.get('loss', float('nan')):.3f} val-mse {p.get('val_mse', float('nan')):.3f}"
            if run_id not in self.workers:
                self.workers[run_id] = self.progress.add_task(text, total=p.get("epochs"))
                if p.get("resumed_from"):
                    self.resumed(run_id, p["resumed_from"])
            self.progress.update(self.workers[run_id], completed=p.get("epoch", 0), description=text)

    def cell_done(self, spec, rec) -> None:
        self.progress.console.print(f"[green]done[/] {spec.run_id}: acc {rec.metric('accuracy'):.2f} "
                                    f"macro-F1 {rec.metric('macro_f1'):.3f} ({rec.timing.wall_seconds:.0f} s)")
        self.progress.advance(self.cells)

    def cell_claimed(self, spec, exc: BaseException) -> None:
        self.progress.console.print(f"[yellow]left to another sweep[/] {exc}")
        self.progress.advance(self.cells)

    def cell_failed(self, spec, exc: BaseException) -> None:
        self.progress.console.print(f"[red]failed[/] {spec.run_id}: {type(exc).__name__}: {exc}")
        self.progress.advance(self.cells)

    def stop(self) -> None:
        self.progress.stop()


def summary_table(summary: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for col in ("Dataset", "Model", "Loss", "n", "Acc. (ours)", "macro-F1 (ours)", "Acc. (paper)", "F1 (paper)"):
        table.add_column(col, justify="right" if col not in ("Dataset", "Model", "Loss") else "left")

    def fmt(mean, std, d):
        if pd.isna(mean):
            return "–"
        return f"{mean:.{d}f}" + ("" if pd.isna(std) else f" ± {std:.{d}f}")

    for _, r in summary.iterrows():
        table.add_row(r.dataset, r.model, r.loss_label, str(r.n), fmt(r.accuracy_mean, r.accuracy_std, 2),
                      fmt(r.macro_f1_mean, r.macro_f1_std, 3), fmt(r.paper_accuracy, float("nan"), 2),
                      fmt(r.paper_f1, float("nan"), 3))
    return table
