// π by Monte-Carlo in C++ with pybind11 (lab 03): the SplitMix64 darts of course/pi.py, so the same
// counts as the Python loop, Numba and Cython. Lab 03 compiles this file into _build/pybind11/ in a
// separate process (setuptools + pybind11's headers). Each chunk starts from its seed,
// pi.chunk_seed(base, i), computed in Python and passed in.
//
// py::gil_scoped_release gives the GIL back for as long as it exists: inside its scope the code must not
// touch Python objects (we copy the seeds out of the NumPy array first), and Python threads run meanwhile.
#include <cstdint>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace py = pybind11;

static inline std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static std::int64_t darts(std::int64_t n, std::uint64_t state) {
    const std::uint64_t gamma = 0x9E3779B97F4A7C15ULL;
    const double to_unit = 1.0 / 9007199254740992.0;  // 2**-53
    // The top 53 bits fit a signed integer, and every x86-64 converts a signed one to double in one
    // instruction (an unsigned one takes several, unless the compiler may use newer instructions).
    std::int64_t hits = 0;
    for (std::int64_t k = 0; k < n; ++k) {
        state += gamma;
        double x = static_cast<std::int64_t>(mix64(state) >> 11) * to_unit;
        state += gamma;
        double y = static_cast<std::int64_t>(mix64(state) >> 11) * to_unit;
        hits += (x * x + y * y <= 1.0);
    }
    return hits;
}

// Hits among n darts from one seed.
std::int64_t chunk_hits(std::int64_t n, std::uint64_t seed) {
    py::gil_scoped_release no_gil;
    return darts(n, seed);
}

// Hits of n_per_chunk darts from each seed, one chunk after another: one thread's share.
std::int64_t hits_of_seeds(std::int64_t n_per_chunk, py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast> seeds) {
    std::vector<std::uint64_t> own(seeds.data(), seeds.data() + seeds.size());  // copied while we hold the GIL
    py::gil_scoped_release no_gil;
    std::int64_t total = 0;
    for (std::uint64_t seed : own) total += darts(n_per_chunk, seed);
    return total;
}

#ifndef MODULE_NAME
#define MODULE_NAME pi_cpp  // lab 03 also builds it for this very processor, as pi_cpp_native
#endif

PYBIND11_MODULE(MODULE_NAME, m) {
    m.doc() = "SplitMix64 darts for π in C++; the GIL is released while they fly";
    m.def("chunk_hits", &chunk_hits, py::arg("n"), py::arg("seed"));
    m.def("hits_of_seeds", &hits_of_seeds, py::arg("n_per_chunk"), py::arg("seeds"));
}
