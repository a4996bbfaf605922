"""Draw docs/architecture.png (the passes, the two families, the targets): python docs/architecture_diagram.py"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

BOXES = {  # name: (x, y, text, colour)
    "ann": (0.02, 0.80, "ReLU ANN\n(.onnx / nn.Module)", "#dbe9f6"),
    "nirin": (0.02, 0.55, "spiking NIR\n(norse, snnTorch, eRBP)", "#dbe9f6"),
    "load": (0.22, 0.68, "load", "#eeeeee"),
    "convert": (0.36, 0.80, "convert\nReLU -> TTFS", "#fde3c8"),
    "repair": (0.36, 0.55, "convert\nrepair, dt", "#d9f2d9"),
    "encode": (0.50, 0.68, "encode\n(encode.py)", "#eeeeee"),
    "quantize": (0.62, 0.68, "quantize\n(profile)", "#eeeeee"),
    "check": (0.74, 0.68, "check\nresources", "#eeeeee"),
    "run": (0.86, 0.68, "run\ntargets", "#eeeeee"),
    "validate": (0.86, 0.40, "validate\n+ write", "#eeeeee"),
    "ref": (0.50, 0.20, "reference\n(float)", "#f6f6c8"),
    "fxsim": (0.63, 0.20, "fxsim\n(integer)", "#f6f6c8"),
    "lava": (0.76, 0.20, "lava\n(vs fxsim)", "#f6f6c8"),
    "norse": (0.89, 0.20, "norse\n(NIR check)", "#f6f6c8"),
    "neurons": (0.12, 0.20, "neurons/ttfs.py, neurons/lif.py:\nparams, float step,\nTHE integer step", "#e8dcf3"),
}
ARROWS = [("ann", "load"), ("nirin", "load"), ("load", "convert"), ("load", "repair"), ("convert", "encode"),
          ("repair", "encode"), ("encode", "quantize"), ("quantize", "check"), ("check", "run"),
          ("run", "validate"), ("run", "ref"), ("run", "fxsim"), ("run", "lava"), ("run", "norse")]


def main(path=Path(__file__).with_name("architecture.png")):
    fig, ax = plt.subplots(figsize=(11, 5.2))
    ax.set_axis_off()
    centers = {}
    for name, (x, y, text, colour) in BOXES.items():
        w, h = (0.24, 0.16) if name == "neurons" else (0.11, 0.11)
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01", fc=colour, ec="#555555"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)
        centers[name] = (x + w / 2, y + h / 2)
    for a, b in ARROWS:
        ax.annotate("", xy=centers[b], xytext=centers[a],
                    arrowprops={"arrowstyle": "->", "color": "#333333", "shrinkA": 22, "shrinkB": 22})
    ax.annotate("", xy=(0.63, 0.30), xytext=(0.36, 0.28),
                arrowprops={"arrowstyle": "->", "color": "#7a4fa0", "linestyle": "--", "shrinkA": 4, "shrinkB": 4})
    ax.text(0.40, 0.33, "fxsim, Lava's TTFS process and the\nstandalone export run this code", fontsize=7.5,
            color="#7a4fa0")
    ax.text(0.02, 0.97, "snncompile: one driver, named passes per family (orange: TTFS, green: LIF), "
            "targets behind one interface", fontsize=10, weight="bold", va="top")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(main())
