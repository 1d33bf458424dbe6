"""review.findings.outliers on features and probabilities made for each case: a group of rows of another
kind with labels the model cannot learn is unlike any class; a lone mislabelled row, and a region where two
classes overlap, are not; a row of the data among the foreign ones whose own label the model is sure of is
not; a lone far row is isolated."""

from __future__ import annotations

import numpy as np

from review.findings import neighbours, outliers


def _case(seed: int = 0):
    """4 classes x 150 rows around their centres (the model sure of them: 0.9 on the class), one of class 0
    labelled 1 (row 0), classes 2 and 3 sharing a region for 60 rows (the model 0.5 / 0.5, labels half and
    half), 40 rows of another kind around a centre of their own with labels drawn at random and
    probabilities the model gives what it cannot place (random, near uniform)."""
    rng = np.random.default_rng(seed)
    d = 30
    centres = rng.normal(size=(6, d)) * 3
    X, labels, P = [], [], []
    for c in range(4):
        X.append(centres[c] + rng.normal(size=(150, d)))
        labels += [c] * 150
        p = np.full((150, 4), 0.1 / 3)
        p[:, c] = 0.9
        P.append(p)
    X.append(centres[4] + rng.normal(size=(60, d)))  # classes 2 and 3 overlap here
    labels += [2, 3] * 30
    p = np.zeros((60, 4))
    p[:, 2] = p[:, 3] = 0.5
    P.append(p)
    X.append(centres[5] + rng.normal(size=(40, d)))  # another kind: random labels
    labels += rng.integers(0, 4, 40).tolist()
    P.append(rng.dirichlet(np.full(4, 20.0), 40))
    labels = np.array(labels)
    labels[0] = 1  # a lone mislabelled row of class 0
    X = np.vstack(X).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, labels, np.vstack(P)


def test_a_group_of_another_kind_is_unlike_any_class_and_nothing_else_is():
    X, labels, P = _case()
    out = outliers.find(neighbours.knn(X), labels, P)
    foreign = np.arange(len(X)) >= 660
    assert out.unplaced[foreign].mean() >= 0.9
    assert not out.unplaced[~foreign].any()  # the mislabelled row 0 and the overlap region (600-659) too
    assert out.flagged[foreign].all() or out.flagged[foreign].mean() >= 0.9
    assert out.class_fit[:600].min() > 0.5 and out.class_fit[foreign].max() < outliers.UNLIKE_ANY_CLASS
    assert (out.score[foreign] < out.score[:600].min()).all()


def test_without_labels_only_the_isolated_rule_runs_and_a_lone_far_row_is_caught():
    X, labels, P = _case(1)
    rng = np.random.default_rng(5)
    far = rng.normal(size=(1, X.shape[1])).astype(np.float32)
    X = np.vstack([X, far / np.linalg.norm(far)])
    out = outliers.find(neighbours.knn(X))
    assert out.isolated[-1] and out.flagged[-1]
    assert np.isnan(out.class_fit).all() and not out.unplaced.any()
    with_labels = outliers.find(neighbours.knn(X), np.append(labels, -1), np.vstack([P, np.full((1, 4), 0.25)]))
    assert with_labels.isolated[-1]


def test_unlabelled_rows_count_for_nothing_in_the_class_fit():
    X, labels, P = _case(2)
    nb = neighbours.knn(X)
    some = labels.copy()
    some[660:] = -1  # the foreign group unlabelled: no evidence either way from its own rows
    fit = outliers.class_fit(nb, some, P)
    assert np.isfinite(fit[:600]).all() and fit[:600].min() > 0.5
    assert np.isnan(fit[660:]).sum() >= 30  # rows whose whole neighbourhood has no label


def test_each_flagged_row_names_its_rules_and_the_card_says_them():
    from review.ui.views.findings import reason

    X, labels, P = _case()
    out = outliers.find(neighbours.knn(X), labels, P)
    assert out.rules(665) == ["unlike any class"] and out.rules(5) == []
    fit = float(out.class_fit[665])
    assert reason("outlier", 0.03, {"rules": out.rules(665), "class_fit": fit}) == (
        f"outlier: unlike any class (the labels around it {max(fit, 0):.0%} of the way from chance to sure) (score 0.03)"
    )
    assert reason("outlier", 0.2, {"rules": ["isolated", "unlike any class"]}) == (
        "outlier: far from every other row, unlike any class (score 0.20)"
    )
    assert reason("outlier", 0.2, {"distance": 0.9}) == "outlier: far from every other row (score 0.20)"  # older runs


def test_a_row_the_model_is_sure_of_is_like_its_class_whatever_its_neighbours():
    """A row inside the foreign group (its nearest rows all foreign) whose own label the model gives 0.97: its
    neighbourhood's lift is low, its own is near 1, so it is not unlike any class; its neighbours still are."""
    X, labels, P = _case()
    i = 680  # inside the foreign group (rows 660-699)
    P = P.copy()
    P[i] = 0.01
    P[i, labels[i]] = 0.97
    out = outliers.find(neighbours.knn(X), labels, P)
    assert out.class_fit[i] < outliers.UNLIKE_ANY_CLASS  # the neighbourhood alone would flag it
    assert out.own_fit[i] >= outliers.OWN_LABEL_SURE and not out.unplaced[i] and not out.flagged[i]
    foreign = np.arange(len(X)) >= 660
    foreign[i] = False
    assert out.unplaced[foreign].mean() >= 0.9
    assert np.isnan(outliers.find(neighbours.knn(X)).own_fit).all()  # no labels: no own lift
