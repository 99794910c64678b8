# The WatchMe code location for the Dagster Helm chart's user deployments (WATCHME_DEPLOYMENT=k8s).
# Same install as `make install`: CPU torch first, then the package from pyproject.toml.
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/watchme
# torch==2.13.0 (CPU build; a plain `torch` would pull the multi-GB CUDA build)
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY watchme_pipeline ./watchme_pipeline
RUN pip install --no-cache-dir '.[k8s]'

# Weights are never in git or in this image by default: mount them (a volume or an init
# container) at /models and point WATCHME_WHISPER_MODEL / _EVENT_MODEL / _EMOTION_MODEL there,
# or build with --build-arg FETCH_WEIGHTS=1 to bake the standard checkpoints into the image.
ARG FETCH_WEIGHTS=0
ENV HF_HOME=/models/hf WATCHME_DATA_DIR=/data WATCHME_DEPLOYMENT=k8s OMP_WAIT_POLICY=PASSIVE
RUN if [ "$FETCH_WEIGHTS" = "1" ]; then python -c "\
import whisper; whisper.load_model('base', download_root='/models'); \
from faster_whisper import WhisperModel; WhisperModel('base', download_root='/models'); \
from transformers import AutoModelForAudioClassification as M, AutoFeatureExtractor as F; \
[(M.from_pretrained(i), F.from_pretrained(i)) for i in \
 ('MIT/ast-finetuned-audioset-10-10-0.4593', 'superb/wav2vec2-base-superb-er')]" \
    && python -m watchme_pipeline export; fi
# The emotion step runs wav2vec2 from its ONNX export (under 1 GB, no torch in the step). An
# export needs ~3 GB, more than a step pod: it is made here with the baked weights, or once by
# `python -m watchme_pipeline export` in a Job writing $WATCHME_DATA_DIR/models/onnx on the volume.

EXPOSE 3030
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", \
     "-m", "watchme_pipeline.definitions"]
