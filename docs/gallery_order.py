"""The gallery's order: the questions in the order the user guide asks them, then the plumbing."""

EXAMPLE_ORDER = ["plot_retrieval.py", "plot_sync.py", "plot_localization.py", "plot_real_webcam.py",
                 "plot_scene.py", "plot_separation.py", "plot_pipeline.py", "plot_dask.py"]


def example_order(filename):
    """Sort key of a gallery script: its place in :data:`EXAMPLE_ORDER` (others last, by name)."""
    return (EXAMPLE_ORDER.index(filename), "") if filename in EXAMPLE_ORDER else (len(EXAMPLE_ORDER), filename)
