"""The paper's 11 text tasks, read from local copies of the public datasets (nothing is downloaded).

Each task is registered under its paper name (:data:`~tallmerge.text.tasks.PAPER_TASKS`) and reads
``<root>/<task>/`` (``root`` is ``data.root``) in either of two layouts: the files its public
release unpacks to, or a Hugging Face ``DatasetDict.save_to_disk`` folder of its hub dataset
(``dataset_dict.json`` plus one folder per split; read with the ``datasets`` package, imported
only then). Both give the same examples. :data:`LAYOUTS` names each task's release files, which
every missing-file error repeats.

===========  ==============================================================  ===============================  =======
task         release files under ``<root>/<task>/``                          hub dataset (save_to_disk)        holdout
===========  ==============================================================  ===============================  =======
paws         ``final/{train,dev}.tsv``                                       ``paws`` labeled_final            1000
qasc         ``QASC_Dataset/{train,dev}.jsonl``                              ``qasc``                          500
quartz       ``quartz-dataset-v1-aug2019/{train,dev}.jsonl``                 ``quartz``                        200
story-cloze  ``cloze_test_{val,test}__spring2016 - cloze_test_ALL_*.csv``    ``story_cloze`` 2016              1000
wiki-qa      ``WikiQACorpus/WikiQA-{train,dev}.tsv``                         ``wiki_qa``                       1000
winogrande   ``winogrande_1.1/{train_xl,dev}.jsonl``                         ``winogrande`` winogrande_xl      1000
wsc          ``WSC/{train,val}.jsonl``                                       ``super_glue`` wsc.fixed          100
cosmos-qa    ``data/{train,valid}.csv``                                      ``cosmos_qa``                     1000
social-iqa   ``socialiqa-train-dev/{train,dev}.jsonl`` + ``*-labels.lst``    ``social_i_qa``                   1000
quail        ``quail_v1.2/xml/ordered/quail_1.2_{train,dev}.xml``            ``quail``                         1000
ropes        ``ropes-train-dev-v1.0/{train,dev}-v1.0.json``                  ``ropes``                         1000
===========  ==============================================================  ===============================  =======

**Splits** are the MaTS code's (github r-three/mats, ``src/data/dataset_readers.py``; it evaluates
T5-large-LM-adapt on both the TIES-Merging 7 and its own 8 QA tasks): ``test`` is the dataset's
labeled validation split (the first file above; Story Cloze: the 2016 test file), ``train`` the
training split (Story Cloze: the 2016 validation file) less its last ``holdout`` rows and ``val``
those rows, which is where merging coefficients are selected. The public test splits are not read
(most are unlabeled). TIES-Merging's own reader differs: it draws 32 validation rows out of the
validation split and reports on the rest (and on PAWS, WikiQA, QuaRTz test files, QuAIL's
challenge set); it is not followed, so that both suites share one set of splits.

**Prompts** are one fixed promptsource (0.2.3, the version both codes pin) template per task: the
first template, in the dataset's ``templates.yaml`` order, that both codes' readers keep (original
task, accuracy metric; SQuAD metrics for ROPES; SocialIQA drops ``Check if a random answer is valid
or not``). That is the template TIES-Merging's T5-large config trains and evaluates with
(``train_template_idx``/``eval_template_idx`` 0); MaTS trains on all templates and evaluates each
example with one of them in turn. Each template is written out as Python, including
promptsource's cut of any variable longer than 2048 characters (:func:`._base.var`), and named in
its task's docstring and ``template`` field. Answer choices are the template's; the label indexes
them. ROPES has no choices in promptsource: see :data:`.reading.ROPES`.

``examples(split, n, seed, root)`` returns a split in file order, or a seeded sample of ``n`` of it
(still in file order). Every failure is a one-line :class:`~tallmerge.errors.TallmergeError`
naming the file: a missing file (with both accepted layouts), a malformed line (with its number),
a label out of range or an empty choice list (with the file and the row).
"""

from __future__ import annotations

from tallmerge.text.datasets import reading, science, sentences
from tallmerge.text.datasets._base import DatasetTextTask
from tallmerge.text.tasks import PAPER_TASKS, register_text_task

_ALL = {task.name: task for task in (*sentences.TASKS, *science.TASKS, *reading.TASKS)}
DATASET_TASKS: dict[str, DatasetTextTask] = {name: _ALL[name] for name in PAPER_TASKS}
"""The 11 dataset tasks by name, in :data:`~tallmerge.text.tasks.PAPER_TASKS` order."""

LAYOUTS = {name: task.layout() for name, task in DATASET_TASKS.items()}
"""Each task's accepted layouts under the data root, as errors name them."""

for _task in DATASET_TASKS.values():
    register_text_task(_task)

__all__ = ["DATASET_TASKS", "LAYOUTS", "DatasetTextTask"]
