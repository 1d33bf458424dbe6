"""review.ui.shortcuts: label keys that cannot be misread, whatever the class names."""

from review.ui.shortcuts import RESERVED, describe, label_keys


def test_digit_labels_get_their_own_digit():
    assert label_keys(["0", "1"]) == ["0", "1"]
    assert label_keys(["1", "2", "3", "4"]) == ["1", "2", "3", "4"]
    assert label_keys(["0 negative", "1 positive"]) == ["0", "1"]
    assert describe(label_keys(["1", "2", "3", "4"])) == "1–4" and describe(["0", "1"]) == "0, 1"


def test_names_without_digits_keep_positions():
    assert label_keys(["neg", "pos"]) == ["1", "2"]
    assert label_keys([f"c{i}" for i in range(11)])[9:] == [None, None]


def test_ambiguous_digits_fall_back_to_letters_never_the_reserved_ones():
    for labels in (["1", "10", "11"], ["0", "1", "x"], [str(i) for i in range(12)]):
        keys = label_keys(labels)
        assert all(k and k.isalpha() and k not in RESERVED and k not in "CR" for k in keys), keys
        assert len(set(keys)) == len(keys)
    assert label_keys(["Sports", "1 World", "Sci"]) == ["A", "W", "D"]  # own first letter unless reserved (S, and C/R)
    assert label_keys(["1", "Cats", "Rats"]) == ["A", "D", "E"]  # st.button refuses C and R as shortcuts
