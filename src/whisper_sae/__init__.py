"""whisper-sae: sparse autoencoders on OpenAI Whisper's activations.

The package follows the data flow: ``audio`` → ``whisper`` → ``activations`` → ``sae`` →
``evaluate`` → ``analysis``; imports only point down that flow.
"""

__version__ = "0.1.0"
