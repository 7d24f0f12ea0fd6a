"""`sambench datasets check`: missing image, corrupt PNG, malformed JSON, count mismatch."""
from dataclasses import replace


from sambench.cli import main
from sambench.datasets import DatasetRef, load_cards
from sambench.datasets.check import check

from fixtures.datasets.write import image, json_file, png, rect

H, W = 32, 48  # GTEA's card drops hand components under 100 px


def write_gtea(root, n=3):
    """A GTEA-style tree: Images/<k>.jpg + Masks/<k>.png with two hands each."""
    hands = rect(H, W, 1, 1, 20, 12) | rect(H, W, 2, 20, 25, 40)
    for k in range(n):
        image(root / "Images" / f"f{k}.jpg", H, W, seed=k)
        png(root / "Masks" / f"f{k}.png", hands * 255)


def run_check(capsys, name, root):
    code = main(["datasets", "check", name, "--root", str(root)])
    return code, capsys.readouterr().out


def test_clean_dataset_matching_its_card(tmp_path):
    write_gtea(tmp_path)
    card = replace(load_cards().get("gtea"), expected={"images": 3, "masks": 6})
    report = check(DatasetRef("gtea", card, tmp_path))
    assert report.exit_code == 0, report.text()
    assert "images with masks: 3, as Table 7 says" in report.text()
    assert "result: OK" in report.text()


def test_count_mismatch_is_reported_with_numbers(tmp_path, capsys):
    write_gtea(tmp_path)
    code, out = run_check(capsys, "gtea", tmp_path)
    assert code == 1
    assert "MISMATCH prompted masks: found 6, Table 7 expects 1208 (-1202)" in out
    assert "MISMATCH images with masks: found 3, Table 7 expects 652 (-649)" in out


def test_corrupt_png_and_missing_label(tmp_path, capsys):
    write_gtea(tmp_path)
    (tmp_path / "Masks" / "f2.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00garbage")
    (tmp_path / "Masks" / "f1.png").unlink()
    code, out = run_check(capsys, "gtea", tmp_path)
    assert code == 1
    assert f"ERROR    unreadable_annotation (1): Images/f2: unreadable label file {tmp_path / 'Masks' / 'f2.png'}" in out
    assert f"ERROR    missing_annotation (1): Images/f1: label file not found: {tmp_path / 'Masks' / 'f1.png'}" in out
    assert "decoded 3 images, 2 instances (2 prompted masks)" in out


def test_missing_image_of_an_annotation(tmp_path, capsys):
    coco = tmp_path / "instance_version"
    image(coco / "train" / "a.jpg", H, W)
    poly = [[1.0, 1.0, 6.0, 1.0, 6.0, 5.0, 1.0, 5.0]]
    json_file(coco / "instances_train_trashcan.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "height": H, "width": W},
                   {"id": 2, "file_name": "gone.jpg", "height": H, "width": W}],
        "categories": [{"id": 1, "name": "trash"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": poly, "iscrowd": 0},
                        {"id": 2, "image_id": 2, "category_id": 1, "segmentation": poly, "iscrowd": 0},
                        {"id": 3, "image_id": 1, "category_id": 5, "segmentation": poly, "iscrowd": 0}]})
    code, out = run_check(capsys, "trashcan", tmp_path)
    assert code == 1
    assert f"ERROR    image (1): 2: image not found: {coco / 'train' / 'gone.jpg'}" in out
    assert "NOTE     unknown_category (1): 1: annotation 3 has category_id 5" in out


def test_malformed_json_is_unusable(tmp_path, capsys):
    (tmp_path / "instance_version").mkdir()
    (tmp_path / "instance_version" / "instances_train_trashcan.json").write_text('{"images": [1,')
    code, out = run_check(capsys, "trashcan", tmp_path)
    assert code == 2
    assert "malformed JSON in" in out and "instances_train_trashcan.json" in out and "UNUSABLE" in out


def test_missing_folder_and_unknown_name(tmp_path, capsys):
    code, out = run_check(capsys, "gtea", tmp_path / "nowhere")
    assert code == 2 and "folder not found" in out
    assert main(["datasets", "check", "gtae", "--root", str(tmp_path)]) == 2
    assert "did you mean gtea" in capsys.readouterr().err


def test_subsampled_card_with_too_few_masks(tmp_path):
    write_gtea(tmp_path)
    card = replace(load_cards().get("gtea"), subsample=True)
    text = check(DatasetRef("gtea", card, tmp_path)).text()
    assert "expects more than 15000 masks" in text
