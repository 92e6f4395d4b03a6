"""Loaders of the benchmark formats: tiny literal fixtures, then the real shared data."""

import numpy as np
import pytest

from seqrec.data import benchmarks as bm
from seqrec.data.idmap import ItemIndex
from seqrec.data.loading import load_test_data, load_training_data, read_log
from seqrec.errors import DataError


def seqs(log, index):
    return [index.decode(s) for s in log]


def error(fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- sessions
def test_sessions_file_plain(write):
    log, index, report = bm.read_sessions_file(write("train_sessions.txt", "3 1 3\n2 2\n\n7\n"))
    assert seqs(log, index) == [["3", "1", "3"], ["2", "2"], ["7"]]
    assert index.external_ids == ["3", "1", "2", "7"]
    assert log.times is None and log.session_ids is None
    assert report.get("read", "blank lines skipped") == 1
    assert report.get("read", "rows") == 6


def test_sessions_file_with_header(write):
    text = "session_id\tlast_timestamp\titems\n17\t100\t5 6 5\n4\t90\t6 7\n"
    log, index, _ = bm.read_sessions_file(write("test_sessions.txt", text))
    assert seqs(log, index) == [["5", "6", "5"], ["6", "7"]]
    assert log.session_ids.tolist() == ["17", "4"]


def test_sessions_file_with_frozen_index(write):
    log, _, report = bm.read_sessions_file(write("s.txt", "1 2 9\n"), ItemIndex(["2", "1"]))
    assert log.items.tolist() == [1, 0, -1]
    assert report.get("encode", "events with items not in the training index (kept as -1)") == 1


def test_sessions_file_errors(write):
    path = write("s.txt", "1 2 3\n4 5x 6\n")
    assert error(bm.read_sessions_file, path) == f"{path} line 2: token '5x' is not an integer id"
    path = write("s.txt", "user items\n1 2\n")
    assert error(bm.read_sessions_file, path).startswith(f"{path} line 1: unexpected header")
    path = write("s.txt", "session_id\tlast_timestamp\titems\n1\t2\t3\n1\t2\n")
    assert (
        error(bm.read_sessions_file, path)
        == f"{path} line 3: expected 3 tab-separated fields, got 2"
    )
    path = write("s.txt", "session_id\tlast_timestamp\titems\n1\t2\t\n")
    assert error(bm.read_sessions_file, path) == f"{path} line 2: session without items"
    path = write("s.txt", "1 2\t3\n")
    assert (
        error(bm.read_sessions_file, path)
        == f"{path} line 1: expected 1 tab-separated field, got 2"
    )
    path = write("s.txt", "\n\n")
    assert error(bm.read_sessions_file, path) == f"{path}: no data (only blank lines)"


# ----------------------------------------------------------------------------- samples
def test_samples_file_exact_order(write):
    path = write("test_samples.tsv", "prefix\tlabel\n5 6 7\t8\n5 6\t7\n9\t5\n")
    samples, _, report = bm.read_samples_file(path, ItemIndex(["5", "6", "7", "8"]))
    assert [p.tolist() for p in samples.prefixes] == [[0, 1, 2], [0, 1], [-1]]
    assert samples.labels.tolist() == [3, 2, 0]
    assert report.get("read", "samples") == 3
    assert report.get("encode", "prefix items not in the training index (kept as -1)") == 1
    assert report.get("encode", "sample labels not in the training index (kept as -1)") == 0


def test_samples_file_with_session_ids(write):
    text = "session_id\ttimestamp\tprefix\tlabel\n11\t100\t1 2\t3\n12\t101\t4 4\t1\n"
    samples, index, _ = bm.read_samples_file(write("test_samples.tsv", text))
    assert [index.decode(p) for p in samples.prefixes] == [["1", "2"], ["4", "4"]]
    assert index.decode(samples.labels) == ["3", "1"]


def test_samples_file_errors(write):
    path = write("t.tsv", "5 6\t7\n")
    assert error(bm.read_samples_file, path).startswith(f"{path} line 1: expected the header")
    path = write("t.tsv", "prefix\tlabel\n5 6\t7\n5\t6\t7\n")
    assert (
        error(bm.read_samples_file, path)
        == f"{path} line 3: expected 2 tab-separated fields, got 3"
    )
    path = write("t.tsv", "prefix\tlabel\n5 6\t7 8\n")
    assert (
        error(bm.read_samples_file, path)
        == f"{path} line 2: expected one integer label, got 2 tokens"
    )
    path = write("t.tsv", "prefix\tlabel\n\t7\n")
    assert error(bm.read_samples_file, path) == f"{path} line 2: empty prefix"
    path = write("t.tsv", "prefix\tlabel\n1\tx\n")
    assert error(bm.read_samples_file, path) == f"{path} line 2: token 'x' is not an integer id"


# ----------------------------------------------------------------------------- histories
def test_s3rec_lines(write):
    log, index, report = bm.read_s3rec(write("Beauty.txt", "1 10 11 12\n2 11 13\n"))
    assert seqs(log, index) == [["10", "11", "12"], ["11", "13"]]
    assert log.session_ids.tolist() == ["1", "2"]
    assert report.get("read", "users") == 2


def test_s3rec_errors(write):
    path = write("x.txt", "1 10 11\n2\n")
    assert error(bm.read_s3rec, path) == (
        f"{path} line 2: expected a user id and at least one item id"
    )
    path = write("x.txt", "1 10 1.5\n")
    assert error(bm.read_s3rec, path) == f"{path} line 1: token '1.5' is not an integer id"


def test_user_item_lines(write):
    log, index, _ = bm.read_user_item(write("u.txt", "1 5\n1 6\n2 5\n1 7\n"))
    assert seqs(log, index) == [["5", "6", "7"], ["5"]]


def test_user_item_errors(write):
    path = write("u.txt", "1 5\n1 6 7\n")
    assert error(bm.read_user_item, path) == f"{path} line 2: expected 2 fields, got 3"


def test_recbole_inter(write):
    text = (
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t30\n186\t302\t3\t10\n196\t51\t2\t20\n196\t7\t4\t20\n"
    )
    log, index, _ = bm.read_recbole(write("ml.inter", text))
    assert seqs(log, index) == [["302"], ["51", "7", "242"]]  # time ties keep file order


def test_recbole_errors(write):
    path = write("x.inter", "user_id\titem_id\n1\t2\n")
    assert error(bm.read_recbole, path).startswith(f"{path} line 1: expected a RecBole header")
    path = write("x.inter", "user_id:token\titem_id:token\n1\t2\n3\n")
    assert error(bm.read_recbole, path) == f"{path} line 3: expected 2 fields, got 1"


def test_movielens_ratings(write):
    text = "userId,movieId,rating,timestamp\n1,1,4.0,300\n1,3,4.0,100\n2,1,5.0,50\n"
    log, index, _ = bm.read_movielens(write("ratings.csv", text))
    assert seqs(log, index) == [["1"], ["3", "1"]]
    assert log.session_ids.tolist() == ["2", "1"]


# ----------------------------------------------------------------------------- raw logs
def test_taobao_sessions_and_behaviours(write):
    text = (
        "1,100,9,pv,1000\n1,101,9,cart,2800\n1,102,9,buy,4601\n"  # 1800 s gap: same session
        "2,100,9,fav,1500\n"
    )
    log, index, report = bm.read_taobao(write("UserBehavior.csv", text))
    assert seqs(log, index) == [["100", "101"], ["100"], ["102"]]
    assert log.event_type_names == ("pv", "cart", "fav", "buy")
    assert log.event_types.tolist() == [0, 1, 2, 3]
    assert log.users.tolist() == [0, 1, 0]
    assert report.get("read", "sessions") == 3


def test_taobao_errors(write):
    path = write("t.csv", "1,100,9,pv,1000\n1,101,9,click,1001\n")
    assert error(bm.read_taobao, path) == (
        f"{path} line 2: event type 'click' is not one of pv, cart, fav, buy"
    )
    path = write("t.csv", "1,100,9,pv\n")
    assert error(bm.read_taobao, path) == f"{path} line 1: expected 5 fields, got 4"


def test_yoochoose_raw(write):
    text = (
        "2,2014-04-02T10:00:00.000Z,20,0\n1,2014-04-01T10:00:05.500Z,11,0\n"
        "1,2014-04-01T10:00:00.000Z,10,0\n"
    )
    log, index, _ = bm.read_yoochoose_raw(write("yoochoose-clicks.dat", text))
    assert seqs(log, index) == [["10", "11"], ["20"]]
    assert log.session_ids.tolist() == ["1", "2"]
    assert np.diff(log.times)[0] == pytest.approx(5.5)


def test_session_rec_tsv(write):
    text = "SessionId\tItemId\tTime\n1\t214536502\t1396860669.277\n1\t214536506\t1396860886.998\n"
    log, index, _ = bm.read_session_rec(write("train.txt", text))
    assert seqs(log, index) == [["214536502", "214536506"]]


# ----------------------------------------------------------------------------- real data
REAL = [
    # path, format, events, sessions, items (published counts in each README)
    ("rsc15/session-rec_100k/yoochoose-clicks-100k_train_full.txt", "tsv", 70278, 17794, 2933),
    ("rsc15/session-rec_100k/yoochoose-clicks-100k_test.txt", "tsv", 13568, 3416, 1771),
    ("rsc15/srgnn_yoochoose1_64", "sessions", 486026, 116167, 17376),
    ("rsc15/raw_sample/sample_yoochoose-clicks.dat", "yoochoose-raw", 1913, 461, 907),
    ("diginetica/srgnn", "sessions", 906140, 186670, 43097),
    ("retailrocket/cotrec", "sessions", 685984, 126168, 36968),
    ("retailrocket/raw_sample/sample_retailrocket.tsv", "tsv", 10080, 2950, 5566),
    ("nowplaying/srgnn", "sessions", 953381, 128077, 60416),
    ("taobao_userbehavior/raw_whole_users/UserBehavior_head_4321.csv", "taobao", 4321, 722, None),
    (
        "taobao_userbehavior/raw_whole_users/UserBehavior_tail_10000.csv",
        "taobao",
        10000,
        1700,
        None,
    ),
    ("amazon_beauty/bert4rec/beauty.txt", "user-item", 353962, 40226, 54542),
    ("amazon_beauty/s3rec/Beauty.txt", "s3rec", 198502, 22363, 12101),
    ("amazon_sports_outdoors/s3rec/Sports_and_Outdoors.txt", "s3rec", 296337, 35598, 18357),
    ("amazon_toys_games/s3rec/Toys_and_Games.txt", "s3rec", 167597, 19412, 11924),
    ("amazon_video_games/sasrec/Video.txt", "user-item", 287107, 31013, 23715),
    ("yelp/s3rec/Yelp.txt", "s3rec", 316354, 30431, 20033),
    ("lastfm_hetrec/s3rec/LastFM.txt", "s3rec", 52551, 1090, 3646),
    ("movielens_100k/recbole/ml-100k.inter", "recbole", 100000, 943, 1682),
    ("movielens_latest_small/ratings.csv", "movielens", 100836, 610, 9724),
]


@pytest.mark.parametrize(
    ("rel", "fmt", "events", "sessions", "items"), REAL, ids=[r[0] for r in REAL]
)
def test_real_dataset_counts(shared_data, rel, fmt, events, sessions, items):
    path = shared_data / rel
    if not path.exists():
        pytest.skip(f"../shared/data not available: {rel} is missing")
    log, index, report = read_log(path, "auto")
    assert (log.n_events, log.n_sessions) == (events, sessions)
    assert report.get("read", "rows") == events
    if items is not None:
        assert len(index) == items
    load_fmt = load_training_data(path).format
    assert load_fmt == fmt


def test_real_taobao_both_files(shared_data):
    folder = shared_data / "taobao_userbehavior" / "raw_whole_users"
    logs = [bm.read_taobao(f)[0] for f in sorted(folder.glob("*.csv"))]
    assert sum(x.n_sessions for x in logs) == 2422
    types = np.concatenate([x.event_types for x in logs])
    assert np.bincount(types).tolist() == [12972, 726, 340, 283]  # pv, cart, fav, buy


@pytest.mark.parametrize(
    ("rel", "n_samples", "n_test_sessions", "n_test_events"),
    [
        ("rsc15/srgnn_yoochoose1_64", 55898, 15324, 71222),
        ("diginetica/srgnn", 60858, 15963, 76821),
        ("retailrocket/cotrec", 15132, 4735, 24602),
        ("nowplaying/srgnn", 89824, 14479, 104303),
    ],
)
def test_real_sessions_folders(shared_data, rel, n_samples, n_test_sessions, n_test_events):
    path = shared_data / rel
    if not path.exists():
        pytest.skip(f"../shared/data not available: {rel} is missing")
    data = load_training_data(path)
    samples, _ = load_test_data(path, "auto", data.item_index, "samples")
    assert len(samples) == n_samples
    test, _ = load_test_data(path, "auto", data.item_index, "next-item")
    assert (test.n_sessions, test.n_events) == (n_test_sessions, n_test_events)
    if rel != "retailrocket/cotrec":  # cotrec samples only have prefixes of length >= 2
        assert int((test.lengths - 1).sum()) == n_samples
    if rel != "rsc15/srgnn_yoochoose1_64":  # the others: all test items occur in train
        assert (samples.labels >= 0).all() and (test.items >= 0).all()


def test_real_test_sessions_reexpand_to_the_exact_samples(shared_data):
    path = shared_data / "rsc15" / "srgnn_yoochoose1_64"
    if not path.exists():
        pytest.skip("../shared/data not available: rsc15/srgnn_yoochoose1_64 is missing")
    index = load_training_data(path).item_index
    samples, _ = load_test_data(path, "sessions", index, "samples")
    test, _ = load_test_data(path, "sessions", index, "next-item")
    prefixes, labels = [], []
    for s in test:  # SR-GNN order: prefix lengths L-1, ..., 1
        for t in range(len(s) - 1, 0, -1):
            prefixes.append(s[:t].tolist())
            labels.append(int(s[t]))
    assert labels == samples.labels.tolist()
    assert prefixes == [p.tolist() for p in samples.prefixes]


def test_duplicate_header_in_token_files(write):
    path = write("t.tsv", "prefix\tlabel\n5 6\t7\nprefix\tlabel\n5\t6\n")
    assert (
        error(bm.read_samples_file, path) == f"{path} line 3: duplicate header line inside the data"
    )
