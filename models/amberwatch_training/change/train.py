"""CLI: ``python -m amberwatch_training.change.train --out models/registry/change-rf/1.0.0 [--seed 0]
[--n-samples 200000]`` (trains, exports model.onnx, writes metrics.json + mlm.json, prints the evaluation)."""

from amberwatch_training.change.forest import main

if __name__ == "__main__":
    main()
