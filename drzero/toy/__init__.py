"""The toy world: a synthetic arithmetic task and a tiny base model pretrained on it.

``drzero.toy.task`` writes the questions and the pretraining corpus, ``drzero.toy.build``
pretrains the model, ``drzero.toy.card`` measures its model card. The shipped question
splits live with the other data (``drzero.data.load_toy_split``, ``toy:train`` /
``toy:test``); ``--model toy`` resolves to the shipped checkpoint (``drzero/toy/checkpoint``).
"""
