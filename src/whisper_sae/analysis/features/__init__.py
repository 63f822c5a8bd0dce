"""What each feature hears: per-feature statistics and top frames (``stats``), phone/word labels from
time alignments (``labels``, ``word_times``), SAE codes of utterances or a store (``codes``), and the
``analyze`` pass (``pipeline``) that saves an ``AnalysisResult`` (``result``).

Nothing is imported here, so ``whisper_sae.analysis.features.stats`` loads with numpy alone.
"""
