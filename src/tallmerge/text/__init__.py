"""The text half: text-to-text T5 models fully fine-tuned per task, scored by rank classification.

- :mod:`.tasks`: what a text task is (prompted examples with answer choices), the registry, the
  paper's three suites and a task's data file;
- :mod:`.pocket`: the offline pocket text benchmark and its corpus, generated from a seed;
- :mod:`.datasets`: the paper's 11 tasks read from local files with their prompt templates;
- :mod:`.t5`: T5 architectures by name and the one factory; :mod:`.tokenizer`: the pocket
  word-level tokenizer and a model folder's own;
- :mod:`.train`: span-corruption pre-training and fine-tuning; :mod:`.rank`: rank classification.
"""
