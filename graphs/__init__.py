"""Plan model, eager DAG executor, workflows and checkpoints (coming with their issues)."""

__all__: list[str] = []
