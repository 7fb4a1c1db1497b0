"""``python -m simla_bench`` (used by ``torchrun -m simla_bench ...``)."""

from simla_bench.cli import main

if __name__ == "__main__":
    main()
