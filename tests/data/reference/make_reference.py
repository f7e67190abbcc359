#!/usr/bin/env python3
"""Reference numbers for tests/reference.rs, computed in float64 with NumPy.

Run from anywhere:  python3 tests/data/reference/make_reference.py
Needs only NumPy (the Rust tests read the .npz files; CI needs no Python). If
onnx and onnxruntime happen to be installed, the ONNX cases are also checked
against onnxruntime's own LSTM/GRU/RNN operators (a check only: the files hold
the NumPy numbers either way).

Every file holds float64 arrays (lengths: int64), time-major: x is [T, B, X].

PyTorch layout (names of models/torch_lstm.cell and models/torch_gru.cell;
formulas as in the docstring of shared/bench/peers.py):

  lstm: z = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, blocks [i; f; g; o] of H rows
        c_t = sig(f) * c_{t-1} + sig(i) * tanh(g);  h_t = sig(o) * tanh(c_t)
  gru:  blocks [r; z; n];  r = sig(W_r x + b_ir + U_r h + b_hr), z likewise,
        n = tanh(W_n x + b_in + r * (U_n h + b_hn))        (linear before reset)
        h_t = (1 - z) * n + z * h_{t-1}
  rnn:  h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

  torch_lstm.npz          weight_ih_l0 [4H, X], weight_hh_l0 [4H, H], bias_ih_l0,
                          bias_hh_l0 [4H]; x; h [T, B, H]; h_last, c_last [B, H]
  torch_lstm_lengths.npz  the same with lengths [B] and initial states h_init,
                          c_init [B, H]
  torch_gru.npz           weight_ih_l0 [3H, X], weight_hh_l0 [3H, H], bias_ih_l0,
                          bias_hh_l0 [3H]; x; h; h_last
  torch_gru_reverse.npz   the same run with reverse=True
  rnn.npz                 weight_ih_l0 [H, X], weight_hh_l0 [H, H], bias_ih_l0,
                          bias_hh_l0 [H]; h0 [H] (the initial state, shared by the
                          batch); x; h; h_last

Sequence semantics (the cellc CLI contract): sequence b runs over its first
lengths[b] steps; past them its state stops changing and its outputs are zero; a
length-0 sequence's last state is its initial state. Reverse runs each sequence
from its last valid step back to its first; outputs stay at their own time
positions.

ONNX layout (operators LSTM, GRU, RNN, layout = 0, one direction):
  X [T, B, I]; W [1, G*H, I]; R [1, G*H, H]; B [1, 2*G*H] = [Wb; Rb];
  sequence_lens [B]; initial_h (initial_c) [1, B, H];
  Y [T, 1, B, H]; Y_h (Y_c) [1, B, H].
  Gate blocks: LSTM i, o, f, c (PyTorch: i, f, g, o); GRU z, r, h (PyTorch: r, z, n).
  Formulas (ONNX operator docs, default activations, no peepholes):
    LSTM: i = sig(X Wi^T + H Ri^T + Wbi + Rbi), o, f likewise; c~ = tanh(...)
          C_t = f * C_{t-1} + i * c~;  H_t = o * tanh(C_t)
    GRU (linear_before_reset = 1):
          z = sig(X Wz^T + H Rz^T + Wbz + Rbz), r likewise
          h~ = tanh(X Wh^T + r * (H Rh^T + Rbh) + Wbh)
          H_t = (1 - z) * h~ + z * H_{t-1}
    RNN:  H_t = tanh(X Wi^T + H Ri^T + Wbi + Rbi)

  onnx_lstm.npz  forward, with sequence_lens, initial_h, initial_c: X W R B
                 sequence_lens initial_h initial_c Y Y_h Y_c
  onnx_gru.npz   direction "reverse", linear_before_reset = 1, with sequence_lens
                 and initial_h: X W R B sequence_lens initial_h Y Y_h
  onnx_rnn.npz   forward, no sequence_lens, initial_h: X W R B initial_h Y Y_h
  onnx_gru_defaults.npz  forward, linear_before_reset = 0, with sequence_lens
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def run_sequences(step, x, init, lengths=None, reverse=False):
    """Drives `step(x_t [X], states) -> new states` (one sequence at a time)
    under the CLI's sequence semantics. Returns every step's first state
    [T, B, H] (zero past a sequence's length) and the last states."""
    T, B, _ = x.shape
    if lengths is None:
        lengths = [T] * B
    H = init[0].shape[1]
    out = np.zeros((T, B, H))
    last = [np.array(s, dtype=np.float64) for s in init]
    for b in range(B):
        states = [s[b].copy() for s in init]
        order = range(lengths[b])
        if reverse:
            order = reversed(list(order))
        for t in order:
            states = step(x[t, b], states)
            out[t, b] = states[0]
        for s, v in zip(last, states):
            s[b] = v
    return out, last


# --- PyTorch layout -------------------------------------------------------------------

def torch_lstm_step(p):
    H = p["weight_hh_l0"].shape[1]

    def step(x, states):
        h, c = states
        z = p["weight_ih_l0"] @ x + p["bias_ih_l0"] + p["weight_hh_l0"] @ h + p["bias_hh_l0"]
        i, f, g, o = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return [h, c]

    return step


def torch_gru_step(p):
    H = p["weight_hh_l0"].shape[1]

    def step(x, states):
        (h,) = states
        gi = p["weight_ih_l0"] @ x + p["bias_ih_l0"]
        gh = p["weight_hh_l0"] @ h + p["bias_hh_l0"]
        r = sigmoid(gi[:H] + gh[:H])
        z = sigmoid(gi[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
        return [(1.0 - z) * n + z * h]

    return step


def torch_rnn_step(p):
    def step(x, states):
        (h,) = states
        return [np.tanh(p["weight_ih_l0"] @ x + p["bias_ih_l0"]
                        + p["weight_hh_l0"] @ h + p["bias_hh_l0"])]

    return step


def torch_params(rng, gates, H, X):
    k = 1.0 / np.sqrt(H)
    return {
        "weight_ih_l0": rng.uniform(-k, k, (gates * H, X)),
        "weight_hh_l0": rng.uniform(-k, k, (gates * H, H)),
        "bias_ih_l0": rng.uniform(-k, k, (gates * H,)),
        "bias_hh_l0": rng.uniform(-k, k, (gates * H,)),
    }


# --- ONNX layout (its own formulas, written from the operator definitions) ------------

def onnx_lstm_step(W, R, Bias):
    H = R.shape[-1]
    W, R = W[0], R[0]
    Wb, Rb = Bias[0, :4 * H], Bias[0, 4 * H:]

    def gate(k, x, h):  # ONNX block k: 0 = i, 1 = o, 2 = f, 3 = c
        rows = slice(k * H, (k + 1) * H)
        return x @ W[rows].T + h @ R[rows].T + Wb[rows] + Rb[rows]

    def step(x, states):
        h, c = states
        i = sigmoid(gate(0, x, h))
        o = sigmoid(gate(1, x, h))
        f = sigmoid(gate(2, x, h))
        c_tilde = np.tanh(gate(3, x, h))
        c = f * c + i * c_tilde
        return [o * np.tanh(c), c]

    return step


def onnx_gru_step(W, R, Bias):
    H = R.shape[-1]
    W, R = W[0], R[0]
    Wb, Rb = Bias[0, :3 * H], Bias[0, 3 * H:]

    def block(a, k):  # ONNX block k: 0 = z, 1 = r, 2 = h
        return a[k * H:(k + 1) * H]

    def step(x, states):
        (h,) = states
        z = sigmoid(x @ block(W, 0).T + h @ block(R, 0).T + block(Wb, 0) + block(Rb, 0))
        r = sigmoid(x @ block(W, 1).T + h @ block(R, 1).T + block(Wb, 1) + block(Rb, 1))
        h_tilde = np.tanh(x @ block(W, 2).T + r * (h @ block(R, 2).T + block(Rb, 2))
                          + block(Wb, 2))
        return [(1.0 - z) * h_tilde + z * h]

    return step


def onnx_gru_lbr0_step(W, R, Bias):
    """ONNX's default GRU (linear_before_reset = 0): the reset gate multiplies
    h before the recurrent weights of the h block."""
    H = R.shape[-1]
    W, R = W[0], R[0]
    Wb, Rb = Bias[0, :3 * H], Bias[0, 3 * H:]

    def block(a, k):  # ONNX block k: 0 = z, 1 = r, 2 = h
        return a[k * H:(k + 1) * H]

    def step(x, states):
        (h,) = states
        z = sigmoid(x @ block(W, 0).T + h @ block(R, 0).T + block(Wb, 0) + block(Rb, 0))
        r = sigmoid(x @ block(W, 1).T + h @ block(R, 1).T + block(Wb, 1) + block(Rb, 1))
        h_tilde = np.tanh(x @ block(W, 2).T + (r * h) @ block(R, 2).T + block(Rb, 2)
                          + block(Wb, 2))
        return [(1.0 - z) * h_tilde + z * h]

    return step


def onnx_rnn_step(W, R, Bias):
    H = R.shape[-1]

    def step(x, states):
        (h,) = states
        return [np.tanh(x @ W[0].T + h @ R[0].T + Bias[0, :H] + Bias[0, H:])]

    return step


def onnx_weights(rng, gates, H, X):
    k = 1.0 / np.sqrt(H)
    return (rng.uniform(-k, k, (1, gates * H, X)),
            rng.uniform(-k, k, (1, gates * H, H)),
            rng.uniform(-k, k, (1, 2 * gates * H)))


def check_with_onnxruntime(op, arrays, attributes, outputs):
    """Runs onnxruntime's operator on the same float64 inputs, if installed."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return "onnxruntime not installed: not cross-checked"
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h"]
    if op == "LSTM":
        names.append("initial_c")

    def run(np_float, elem_float):
        feeds, inputs, node_inputs = {}, [], []
        for n in names:
            if n not in arrays:
                node_inputs.append("")
                continue
            if n == "sequence_lens":
                a, elem = arrays[n].astype(np.int32), TensorProto.INT32
            else:
                a, elem = arrays[n].astype(np_float), elem_float
            feeds[n] = a
            inputs.append(helper.make_tensor_value_info(n, elem, list(a.shape)))
            node_inputs.append(n)
        while node_inputs and node_inputs[-1] == "":
            node_inputs.pop()
        outs = [helper.make_tensor_value_info(o, elem_float, None) for o in outputs]
        node = helper.make_node(op, node_inputs, outputs, hidden_size=arrays["R"].shape[-1],
                                **attributes)
        model = helper.make_model(helper.make_graph([node], "ref", inputs, outs),
                                  opset_imports=[helper.make_opsetid("", 14)])
        model.ir_version = 8
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(outputs, feeds)

    # onnxruntime implements some of these operators for float32 only.
    try:
        got, tolerance, kind = run(np.float64, TensorProto.DOUBLE), 1e-12, "float64"
    except Exception:  # noqa: BLE001 (any failure to build or run the double model)
        got, tolerance, kind = run(np.float32, TensorProto.FLOAT), 1e-5, "float32"
    for name, g in zip(outputs, got):
        err = np.abs(g - arrays[name]).max()
        assert err < tolerance, f"{op}: onnxruntime's {name} differs by {err}"
    return f"agrees with onnxruntime ({kind}, max error < {tolerance:g})"


def save(name, arrays):
    path = os.path.join(HERE, name)
    np.savez(path, **arrays)
    print(f"{name}: {os.path.getsize(path)} bytes")


def main():
    rng = np.random.default_rng(20240611)
    T, B, X, H = 5, 3, 3, 4

    # PyTorch-layout LSTM, zero initial state, full length.
    p = torch_params(rng, 4, H, X)
    x = rng.standard_normal((T, B, X))
    zero = np.zeros((B, H))
    h, (h_last, c_last) = run_sequences(torch_lstm_step(p), x, [zero, zero])
    save("torch_lstm.npz", dict(p, x=x, h=h, h_last=h_last, c_last=c_last))

    # The same LSTM with lengths and supplied initial states.
    x = rng.standard_normal((T, B, X))
    lengths = np.array([5, 2, 0], dtype=np.int64)
    h_init, c_init = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    h, (h_last, c_last) = run_sequences(torch_lstm_step(p), x, [h_init, c_init], lengths)
    save("torch_lstm_lengths.npz", dict(p, x=x, lengths=lengths, h_init=h_init,
                                        c_init=c_init, h=h, h_last=h_last, c_last=c_last))

    # PyTorch-layout GRU, forward and reverse.
    p = torch_params(rng, 3, H, X)
    x = rng.standard_normal((T, B, X))
    h, (h_last,) = run_sequences(torch_gru_step(p), x, [zero])
    save("torch_gru.npz", dict(p, x=x, h=h, h_last=h_last))
    h, (h_last,) = run_sequences(torch_gru_step(p), x, [zero], reverse=True)
    save("torch_gru_reverse.npz", dict(p, x=x, h=h, h_last=h_last))

    # Plain tanh RNN from an initial state shared by the batch.
    p = torch_params(rng, 1, H, X)
    x = rng.standard_normal((T, B, X))
    h0 = rng.standard_normal(H)
    h, (h_last,) = run_sequences(torch_rnn_step(p), x, [np.tile(h0, (B, 1))])
    save("rnn.npz", dict(p, h0=h0, x=x, h=h, h_last=h_last))

    # ONNX LSTM: forward, sequence_lens, initial_h and initial_c.
    W, R, Bias = onnx_weights(rng, 4, H, X)
    x = rng.standard_normal((T, B, X))
    lens = np.array([3, 5, 1], dtype=np.int64)
    h_init, c_init = rng.standard_normal((1, B, H)), rng.standard_normal((1, B, H))
    y, (y_h, y_c) = run_sequences(onnx_lstm_step(W, R, Bias), x, [h_init[0], c_init[0]], lens)
    arrays = dict(X=x, W=W, R=R, B=Bias, sequence_lens=lens, initial_h=h_init,
                  initial_c=c_init, Y=y[:, None], Y_h=y_h[None], Y_c=y_c[None])
    print("  LSTM:", check_with_onnxruntime("LSTM", arrays, {}, ["Y", "Y_h", "Y_c"]))
    save("onnx_lstm.npz", arrays)

    # ONNX GRU: reverse, linear_before_reset = 1, sequence_lens, initial_h.
    W, R, Bias = onnx_weights(rng, 3, H, X)
    x = rng.standard_normal((T, B, X))
    lens = np.array([2, 5, 4], dtype=np.int64)
    h_init = rng.standard_normal((1, B, H))
    y, (y_h,) = run_sequences(onnx_gru_step(W, R, Bias), x, [h_init[0]], lens, reverse=True)
    arrays = dict(X=x, W=W, R=R, B=Bias, sequence_lens=lens, initial_h=h_init,
                  Y=y[:, None], Y_h=y_h[None])
    print("  GRU:", check_with_onnxruntime(
        "GRU", arrays, {"direction": "reverse", "linear_before_reset": 1}, ["Y", "Y_h"]))
    save("onnx_gru.npz", arrays)

    # ONNX RNN: forward, initial_h.
    W, R, Bias = onnx_weights(rng, 1, H, X)
    x = rng.standard_normal((T, B, X))
    h_init = rng.standard_normal((1, B, H))
    y, (y_h,) = run_sequences(onnx_rnn_step(W, R, Bias), x, [h_init[0]])
    arrays = dict(X=x, W=W, R=R, B=Bias, initial_h=h_init, Y=y[:, None], Y_h=y_h[None])
    print("  RNN:", check_with_onnxruntime("RNN", arrays, {}, ["Y", "Y_h"]))
    save("onnx_rnn.npz", arrays)

    # ONNX GRU with the operator's defaults: forward, linear_before_reset = 0.
    W, R, Bias = onnx_weights(rng, 3, H, X)
    x = rng.standard_normal((T, B, X))
    lens = np.array([5, 0, 3], dtype=np.int64)
    h_init = rng.standard_normal((1, B, H))
    y, (y_h,) = run_sequences(onnx_gru_lbr0_step(W, R, Bias), x, [h_init[0]], lens)
    arrays = dict(X=x, W=W, R=R, B=Bias, sequence_lens=lens, initial_h=h_init,
                  Y=y[:, None], Y_h=y_h[None])
    print("  GRU (defaults):", check_with_onnxruntime("GRU", arrays, {}, ["Y", "Y_h"]))
    save("onnx_gru_defaults.npz", arrays)


if __name__ == "__main__":
    main()
