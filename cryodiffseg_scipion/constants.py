"""Names shared by the plugin's modules: configuration variables, output names, engine file names."""

PRODUCT_NAME = "cryodiffseg"  # what users see: forms, run names, the protocol tree (the package is cryodiffseg_scipion)
ENGINE_VERSION = "0.1.0"  # the engine release this plugin drives (the plugin never imports the engine)
DISTRIBUTION = "cryodiffseg"  # the distribution that carries both the plugin and the engine package
# `scipion3 installb cryodiffseg` installs into <EM_ROOT>/cryodiffseg-engine-<version>. Not cryodiffseg-<version>:
# Scipion takes a binary as installed when a site-packages entry starts with its folder name, and the plugin's own
# cryodiffseg-<version>.dist-info does.
ENGINE_BINARY_VERSION = f"engine-{ENGINE_VERSION}"
ENGINE_INSTALLED = "engine-installed"  # the install recipe's sentinel, created only once the engine answers
TORCH_REQUIREMENT = "torch==2.13.0"  # as README and scripts/test pin it: installed first, on its own

# Configuration variables (scipion.conf or the environment). All plugins share one dictionary: keep the prefix.
RUNTIME_VAR = "CRYODIFFSEG_RUNTIME"
HOME_VAR = "CRYODIFFSEG_HOME"
ENGINE_VAR = "CRYODIFFSEG_ENGINE"
IMAGE_VAR = "CRYODIFFSEG_IMAGE"
RUNTIME_ARGS_VAR = "CRYODIFFSEG_RUNTIME_ARGS"
WEIGHTS_VAR = "CRYODIFFSEG_WEIGHTS"
BACKBONE_VAR = "CRYODIFFSEG_BACKBONE"
CELLPOSE_MODEL_VAR = "CRYODIFFSEG_CELLPOSE_MODEL"
NAPARI_VAR = "CRYODIFFSEG_NAPARI"

DEFAULT_IMAGE = f"cryodiffseg:{ENGINE_VERSION}"
PAPER_BACKBONE = "CompVis/stable-diffusion-v1-4"
# The engine's default: the paper's backbone when its weights are in the local Hugging Face cache, otherwise
# "compact" (shipped with the engine, offline).
DEFAULT_BACKBONE = "auto"
DEFAULT_CELLPOSE_MODEL = "cyto3"
MEMBRANE_SOURCES = ("sheets", "attention", "both")  # the engine's --membranes choices, default first
PARTICLE_SOURCES = ("blobs", "attention", "both")  # the engine's --particles choices, default first

# Protocol outputs
PSEUDO_MASKS = "pseudoMasks"
PSEUDO_POINTS = "pseudoPoints"
MODEL = "model"
MEMBRANE_MASKS = "membraneMasks"
MEMBRANE_PROBABILITIES = "membraneProbabilities"
MEMBRANE_MESHES = "membraneMeshes"
COORDINATES = "coordinates"
FAILED_TOMOGRAMS = "failedTomograms"

# Engine output files (the <name> prefix is the tomogram file name without extension)
PSEUDOLABEL_MANIFEST = "pseudolabels.json"
ENGINE_ERROR_FILE = "cryodiffseg-error.txt"  # the engine's one-line reason when it fails (--error-file)
MEMBRANE_MASK_SUFFIX = "_membrane_mask.mrc"
MEMBRANE_PROBABILITY_SUFFIX = "_membrane_probability.mrc"
MEMBRANE_PIECES_SUFFIX = "_membrane_pieces.csv"  # piece, x, y, z: the mask's connected pieces as points
PARTICLES_SUFFIX = "_particles.csv"
MODEL_TARGETS = ("membranes", "particles")
MODEL_RECORD = "model.json"
TRAINING_RECORD = "training.json"
