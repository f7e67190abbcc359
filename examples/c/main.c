/* The textbook LSTM (models/lstm.cell), compiled ahead of time by
 * `cellc compile`, run from C: forward over a batch of sequences, then
 * backpropagation through time, printing checksums.
 *
 *   make            compiles the cell and this program (see the Makefile)
 *   ./lstm_example  [DIR]
 *
 * With DIR, the parameters are read from DIR/W_f.npy ... DIR/b_o.npy (what
 * `unzip params.npz` gives for a cellc or NumPy archive of float32 arrays)
 * and the input from DIR/x.npy ([T, B, X]); without it they are generated
 * (uniform in +-1/sqrt(H+X), and a smooth input), T = 20.
 *
 * The loss differentiated is L = sum over every step and sequence of sum(h):
 * its cotangent is 1 for every output element. */
#include "lstm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPARAMS 8

/* Reads a float32, C-order .npy file of `want` elements (any shape whose
 * product is `want`; with want == 0, any size, returned in *count). */
static float *read_npy(const char *path, size_t want, size_t *count) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char magic[10];
    float *data = NULL;
    char *header = NULL;
    if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) goto fail;
    size_t len = magic[8] | (size_t)magic[9] << 8;
    if (magic[6] != 1) { /* versions 2 and 3: a 4-byte header length */
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2) goto fail;
        len |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    header = malloc(len + 1);
    if (!header || fread(header, 1, len, f) != len) goto fail;
    header[len] = '\0';
    if (!strstr(header, "'<f4'") || strstr(header, "'fortran_order': True")) {
        fprintf(stderr, "%s: not a float32 C-order array\n", path);
        goto fail;
    }
    const char *shape = strstr(header, "'shape': (");
    if (!shape) goto fail;
    size_t n = 1;
    for (const char *s = shape + 10; *s && *s != ')';) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s) { s++; continue; }
        n *= v;
        s = end;
    }
    if (want && n != want) {
        fprintf(stderr, "%s: %zu elements, expected %zu\n", path, n, want);
        goto fail;
    }
    data = malloc(n * sizeof(float) + 1);
    if (!data || fread(data, sizeof(float), n, f) != n) goto fail;
    free(header);
    fclose(f);
    if (count) *count = n;
    return data;
fail:
    free(data);
    free(header);
    fclose(f);
    return NULL;
}

static double sum(const float *a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i];
    return s;
}

int main(int argc, char **argv) {
    const char *names[NPARAMS] = {"W_f", "W_i", "W_C", "W_o", "b_f", "b_i", "b_C", "b_o"};
    const size_t sizes[NPARAMS] = {
        LSTM_PARAM_W_f_SIZE, LSTM_PARAM_W_i_SIZE, LSTM_PARAM_W_C_SIZE, LSTM_PARAM_W_o_SIZE,
        LSTM_PARAM_b_f_SIZE, LSTM_PARAM_b_i_SIZE, LSTM_PARAM_b_C_SIZE, LSTM_PARAM_b_o_SIZE};
    float *values[NPARAMS];
    size_t T = 20;
    float *x = NULL;
    if (argc > 1) {
        char path[4096];
        for (int k = 0; k < NPARAMS; k++) {
            snprintf(path, sizeof path, "%s/%s.npy", argv[1], names[k]);
            if (!(values[k] = read_npy(path, sizes[k], NULL))) {
                fprintf(stderr, "cannot read %s\n", path);
                return 1;
            }
        }
        size_t n = 0;
        snprintf(path, sizeof path, "%s/x.npy", argv[1]);
        if (!(x = read_npy(path, 0, &n)) || n % LSTM_INPUT_x_SIZE != 0) {
            fprintf(stderr, "cannot read %s as [T, %d, %d]\n", path, LSTM_BATCH, LSTM_DIM_X);
            return 1;
        }
        T = n / LSTM_INPUT_x_SIZE;
    } else {
        unsigned long state = 12345;
        float scale = 1.0f / sqrtf((float)(LSTM_DIM_H + LSTM_DIM_X));
        for (int k = 0; k < NPARAMS; k++) {
            values[k] = malloc(sizes[k] * sizeof(float));
            if (!values[k]) return 1;
            for (size_t i = 0; i < sizes[k]; i++) {
                state = state * 6364136223846793005UL + 1442695040888963407UL;
                values[k][i] = scale * (2.0f * (float)(state >> 40) / 16777216.0f - 1.0f);
            }
        }
        x = malloc(T * LSTM_INPUT_x_SIZE * sizeof(float));
        if (!x) return 1;
        for (size_t i = 0; i < T * LSTM_INPUT_x_SIZE; i++) x[i] = sinf(0.1f * (float)i);
    }

    lstm_params p = {values[0], values[1], values[2], values[3],
                     values[4], values[5], values[6], values[7]};
    lstm_inputs in = {x};
    size_t out_n = T * LSTM_OUTPUT_h_SIZE;
    float *h = malloc(out_n * sizeof(float) + 1);
    float *h_last = malloc(LSTM_STATE_h_SIZE * sizeof(float));
    float *c_last = malloc(LSTM_STATE_C_SIZE * sizeof(float));
    float *ones = malloc(out_n * sizeof(float) + 1);
    float *grads[NPARAMS];
    float *dx = malloc(T * LSTM_INPUT_x_SIZE * sizeof(float) + 1);
    if (!h || !h_last || !c_last || !ones || !dx) return 1;
    for (size_t i = 0; i < out_n; i++) ones[i] = 1.0f;
    for (int k = 0; k < NPARAMS; k++)
        if (!(grads[k] = malloc(sizes[k] * sizeof(float)))) return 1;

    /* One workspace serves both calls: the larger of the two sizes. */
    size_t nf = lstm_forward_workspace(T), nb = lstm_backward_workspace(T);
    size_t nw = nf > nb ? nf : nb;
    void *ws = malloc(nw);
    if (!ws) return 1;

    lstm_outputs out = {h};
    lstm_state_values last = {h_last, c_last};
    int rc = lstm_forward(T, &p, &in, NULL, NULL, 0, &out, &last, ws, nw);
    if (rc != LSTM_OK) {
        fprintf(stderr, "lstm_forward: error %d\n", rc);
        return 1;
    }
    printf("T %zu, B %d, X %d, H %d\n", T, LSTM_BATCH, LSTM_DIM_X, LSTM_DIM_H);
    printf("forward: sum(h) = %.9g, sum(h.last) = %.9g, sum(C.last) = %.9g\n",
           sum(h, out_n), sum(h_last, LSTM_STATE_h_SIZE), sum(c_last, LSTM_STATE_C_SIZE));

    lstm_output_grads dy = {ones};
    lstm_param_grads dp = {grads[0], grads[1], grads[2], grads[3],
                           grads[4], grads[5], grads[6], grads[7]};
    lstm_input_grads dxs = {dx};
    rc = lstm_backward(T, &p, &in, NULL, NULL, 0, &dy, NULL, &dp, &dxs, NULL, NULL, ws, nw);
    if (rc != LSTM_OK) {
        fprintf(stderr, "lstm_backward: error %d\n", rc);
        return 1;
    }
    printf("backward:");
    for (int k = 0; k < NPARAMS; k++) printf(" sum(d%s) = %.9g,", names[k], sum(grads[k], sizes[k]));
    printf(" sum(dx) = %.9g\n", sum(dx, T * LSTM_INPUT_x_SIZE));

    for (int k = 0; k < NPARAMS; k++) {
        free(values[k]);
        free(grads[k]);
    }
    free(x), free(h), free(h_last), free(c_last), free(ones), free(dx), free(ws);
    return 0;
}
