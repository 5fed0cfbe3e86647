import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # see kvae_bench/cli.py: two test workers
# with long-spinning OpenMP threads on 2 cores slow each other down many times over
