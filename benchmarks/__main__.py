"""`python -m benchmarks` (or `make bench`): run every benchmark."""

from benchmarks import bench_wait

if __name__ == "__main__":
    bench_wait.main()
