"""Where work runs: local, or submitit (debug / SLURM). The only package that imports submitit."""
