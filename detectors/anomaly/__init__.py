"""Behaviour unlike peers: peer groups, Isolation Forests, sequence rarity, and their fusion.

Refit (:func:`detectors.anomaly.train.refit`, scheduled on its own) and scoring
(:func:`detectors.anomaly.score.score_tasks`, every run) are separate; scoring never fits anything.

1. ``peers.py``: :func:`~detectors.anomaly.peers.assign_peer_groups` puts agents in peer groups
   (``agent_peer_groups``): ``agent_clusters`` clusters them by tool-usage profile (share of each
   tool among the agent's actions; KMeans, fixed seed) and keeps each group's mean profile in
   ``peer_group_profiles``, ``roles`` reads a role from the agent id with a regular expression
   (named group ``role``), ``single`` puts everyone in one group. Agents first seen after the
   refit are placed at scoring time (:func:`~detectors.anomaly.peers.place_new_agents`): nearest
   profile, their role, or the single group.
2. ``train.py``: :func:`~detectors.anomaly.train.train_models` fits, for each peer group with at
   least ``min_tasks`` tasks started in the training window, a sequence model
   (``sequence_transitions``, ``sql/sequence_transitions.sql``) and one ``IsolationForest``, stored
   as a new version in ``anomaly_models`` with the window, features, parameters and library
   version. A smaller group is skipped and logged (cold start): it gets no model, so nothing of it
   is scored or flagged.
3. ``score.py``: :func:`~detectors.anomaly.score.score_tasks` scores tasks with their group's
   latest models into ``task_anomaly_scores``.

``signals.py`` computes, for training and scoring alike, three signals per task, each normalised
by its spread over the group's training tasks (``(value - median) / (1.4826 * MAD)``):

* ``iforest``: the forest's anomaly score (``-score_samples``) on ``FEATURES`` as
  ``ln(1 + value)`` plus ``start_hour_rarity`` (``-ln`` of the smoothed share of the group's
  training tasks that started in the task's UTC hour: off-hours work is rare for most groups);
* ``baseline``: the simple baseline, the largest robust z above the peer median over the count
  features. The robust z of a feature is ``(ln(1 + value) - peer median) / scale``, ``scale`` being
  ``1.4826 * MAD`` of the training tasks, or ``1.2533 * mean absolute deviation`` when the MAD is 0
  (a feature most peers have at one value), floored at ``MIN_LOG_SCALE``;
* ``sequence``: mean ``-ln P`` of the task's tool transitions under the group's smoothed
  transition probabilities (``sql/sequence_rarity.sql``), with DeepLog-style rare transitions.

``fused_score`` (:func:`~detectors.anomaly.signals.fuse`) combines the normalised signals;
``fused_percentile`` places it among the training tasks' fused scores. ``top_features`` (largest
robust z, raw units) and ``rare_transitions`` explain a score.

Models are stored pickled in the warehouse: the warehouse is trusted storage, since whoever can
write it can make the scoring process run code.
"""
