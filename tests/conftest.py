import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see kvae_bench/cli.py: two test workers
# with spinning OpenMP threads on 2 cores slow each other down many times over
