"""Make the NumPy reference files that tests/npy.rs reads.

Run from anywhere with NumPy installed:  python3 tests/data/npy/make_fixtures.py
The files land beside this script. The expected values are hard-coded in
tests/npy.rs, so change both together. (The .npz files carry zip timestamps,
so re-running changes their bytes but not their contents.)
"""

import io
import os
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def save(name, array):
    np.save(path(name), array, allow_pickle=True)


def npy_bytes(array, version=None):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()


# Floats, both byte orders, and half precision.
save("f32.npy", np.array([[0.0, 1.5, -2.25], [3.125, -0.0, 1e-3]], dtype=np.float32))
save("f64.npy", np.array([1.0, -2.5, 1e300, np.inf, -np.inf, np.nan], dtype=np.float64))
save("f32_be.npy", np.array([[1.0, -2.0], [3.5, 0.25]], dtype=">f4"))
save("f64_be.npy", np.array([[1.0, -2.0], [3.5, 1e-300]], dtype=">f8"))
save("f16.npy", np.array([1.0, -2.0, 0.5, 65504.0, 2.0**-24, np.inf, -0.0], dtype=np.float16))

# Integers and bools.
save("int32.npy", np.array([[-(2**31), -1, 0], [1, 2, 2**31 - 1]], dtype=np.int32))
save("int64.npy", np.array([-(2**63), -1, 0, 2**63 - 1], dtype=np.int64))
np.savez(
    path("ints.npz"),
    int8=np.array([-128, 127], dtype=np.int8),
    uint8=np.array([0, 255], dtype=np.uint8),
    int16_be=np.array([-32768, 32767], dtype=">i2"),
    uint16=np.array([65535], dtype=np.uint16),
    uint32=np.array([4294967295], dtype=np.uint32),
    uint64=np.array([2**63 - 1], dtype=np.uint64),
)
save("uint64_big.npy", np.array([1, 2**63], dtype=np.uint64))
save("bool.npy", np.array([[True, False, True], [False, False, True]]))

# Layouts and odd shapes.
save("fortran_f32.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
save("fortran_i64_3d.npy", np.asfortranarray(np.arange(24, dtype=np.int64).reshape(2, 3, 4)))
save("scalar.npy", np.array(3.5))
save("empty.npy", np.zeros((0, 3), dtype=np.float32))

# Header versions 2.0 and 3.0.
with open(path("v2.npy"), "wb") as f:
    f.write(npy_bytes(np.array([1, 2, 3], dtype=np.int16), version=(2, 0)))
with open(path("v3.npy"), "wb") as f:
    f.write(npy_bytes(np.array([1.5, 2.5], dtype=np.float64), version=(3, 0)))

# Dtypes the reader refuses.
save("object.npy", np.array([1, "a", None], dtype=object))
save("structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
save("strings.npy", np.array(["ab", "c"]))
save("complex.npy", np.array([1 + 2j], dtype=np.complex64))

# Archives as numpy writes them; names with dots, as cellc uses them.
arrays = {
    "h.last": np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -0.125]], dtype=np.float32),
    "readout.W": np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float64),
    "steps": np.array([1, 2, 3], dtype=np.int64),
    "mask": np.array([True, False]),
}
np.savez(path("savez.npz"), **arrays)
np.savez_compressed(path("savez_compressed.npz"), **arrays)

# Broken archives: a member that is not .npy, and a member cut short.
with zipfile.ZipFile(path("bad_member.npz"), "w") as z:
    z.writestr("x.npy", npy_bytes(np.array([1.0], dtype=np.float32)))
    z.writestr("notes.txt", "not an array\n")
with zipfile.ZipFile(path("truncated_member.npz"), "w") as z:
    z.writestr("w.npy", npy_bytes(np.arange(4, dtype=np.float64))[:-5])
