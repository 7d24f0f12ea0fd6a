"""Dataset cards: one per Table 7 dataset (suite names), complete, and docs/datasets.md current."""
from pathlib import Path

import pytest

from sambench.cli import main
from sambench.datasets import FORMATS, load_cards
from sambench.datasets.cards import DatasetCard, render_table
from sambench.errors import SambenchError
from sambench.tasks import load_suite

DOCS = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"
SA23 = load_suite("sa23-point").tasks[0].datasets


def test_every_suite_dataset_has_a_complete_card():
    cards = load_cards()
    assert len(SA23) == 23
    for name in SA23:
        card = cards.get(name)
        assert card.format in FORMATS, name
        for field in ("title", "domain", "source", "licence", "split", "layout_note", "extraction"):
            assert getattr(card, field).strip(), f"{name}: {field} empty"
        assert card.decisions, name
        assert set(card.expected) == {"images", "masks"}, name
        assert card.subsample in (True, False), name
        assert any("blur" in d for d in card.deviations), f"{name}: face blurring deviation not documented"


def test_table7_totals_match_the_paper():
    cards = load_cards()
    assert sum(cards.get(n).expected["images"] for n in SA23) == 40188
    assert sum(cards.get(n).expected["masks"] for n in SA23) == 172653


def test_other_cards_exist():
    cards = load_cards()
    for name, fmt in (("coco2017", "coco"), ("lvis-v1", "lvis"), ("bsds500", "bsds"), ("sa1b", "sa1b")):
        assert cards.get(name).format == fmt


def test_docs_table_is_generated_from_the_cards(tmp_path, capsys):
    assert DOCS.read_text() == render_table(), "docs/datasets.md is stale: run `sambench datasets table --out docs/datasets.md`"
    assert main(["datasets", "table", "--out", str(tmp_path / "d.md")]) == 0
    assert (tmp_path / "d.md").read_text() == render_table()
    assert "| `hypersim` | Hypersim | Simulation |" in render_table()


def test_card_with_unknown_key_is_rejected(tmp_path):
    (tmp_path / "x.yaml").write_text("name: x\nformat: coco\nsubsampel: true\n")
    with pytest.raises(SambenchError, match="unknown keys"):
        DatasetCard.from_yaml(tmp_path / "x.yaml")


def test_list_shows_presence(tmp_path, capsys):
    (tmp_path / "gtea").mkdir()
    assert main(["datasets", "list", "--data-root", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "present" in lines["gtea"] and lines["dram"].rstrip().endswith("absent")
    assert "bundled" in lines["synth-shapes"]
