/* Times the AOT-compiled LSTM from C, as `cellc bench` times the JIT: one
 * call over T steps, forward (lstm_forward) or forward + BPTT
 * (lstm_backward, which runs the forward pass itself), on generated data.
 *
 *   make lstm_bench X=.. H=.. B=..
 *   ./lstm_bench T [fwd|fwdbwd] [REPEATS]
 *
 * Prints the median and minimum milliseconds per call over REPEATS timed
 * calls (default 50) after 3 warm-up calls. */
#define _POSIX_C_SOURCE 199309L
#include "lstm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *filled(size_t n, float scale) {
    float *p = malloc(n * sizeof(float) + 1);
    if (!p) exit(1);
    for (size_t i = 0; i < n; i++) p[i] = scale * sinf(0.37f * (float)i + 0.1f);
    return p;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s T [fwd|fwdbwd] [REPEATS]\n", argv[0]);
        return 2;
    }
    size_t T = (size_t)atol(argv[1]);
    int backward = argc > 2 && strcmp(argv[2], "fwdbwd") == 0;
    int repeats = argc > 3 ? atoi(argv[3]) : 50;
    if (repeats < 1) repeats = 1;
    float scale = 1.0f / sqrtf((float)(LSTM_DIM_H + LSTM_DIM_X));
    lstm_params p = {filled(LSTM_PARAM_W_f_SIZE, scale), filled(LSTM_PARAM_W_i_SIZE, scale),
                     filled(LSTM_PARAM_W_C_SIZE, scale), filled(LSTM_PARAM_W_o_SIZE, scale),
                     filled(LSTM_PARAM_b_f_SIZE, scale), filled(LSTM_PARAM_b_i_SIZE, scale),
                     filled(LSTM_PARAM_b_C_SIZE, scale), filled(LSTM_PARAM_b_o_SIZE, scale)};
    lstm_inputs in = {filled(T * LSTM_INPUT_x_SIZE, 1.0f)};
    lstm_outputs out = {filled(T * LSTM_OUTPUT_h_SIZE, 0.0f)};
    lstm_output_grads dy = {filled(T * LSTM_OUTPUT_h_SIZE, 1.0f)};
    lstm_param_grads dp = {filled(LSTM_PARAM_W_f_SIZE, 0), filled(LSTM_PARAM_W_i_SIZE, 0),
                           filled(LSTM_PARAM_W_C_SIZE, 0), filled(LSTM_PARAM_W_o_SIZE, 0),
                           filled(LSTM_PARAM_b_f_SIZE, 0), filled(LSTM_PARAM_b_i_SIZE, 0),
                           filled(LSTM_PARAM_b_C_SIZE, 0), filled(LSTM_PARAM_b_o_SIZE, 0)};
    lstm_input_grads dx = {filled(T * LSTM_INPUT_x_SIZE, 0)};
    size_t n = backward ? lstm_backward_workspace(T) : lstm_forward_workspace(T);
    void *ws = malloc(n);
    double *times = malloc(repeats * sizeof(double));
    if (!ws || !times) return 1;
    for (int r = -3; r < repeats; r++) {
        double t0 = now_ms();
        int rc = backward
            ? lstm_backward(T, &p, &in, NULL, NULL, 0, &dy, NULL, &dp, &dx, NULL, NULL, ws, n)
            : lstm_forward(T, &p, &in, NULL, NULL, 0, &out, NULL, ws, n);
        double t1 = now_ms();
        if (rc != LSTM_OK) {
            fprintf(stderr, "error %d\n", rc);
            return 1;
        }
        if (r >= 0) times[r] = t1 - t0;
    }
    qsort(times, repeats, sizeof(double), cmp);
    printf("{\"mode\": \"%s\", \"seq\": %zu, \"batch\": %d, \"X\": %d, \"H\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f}\n",
           backward ? "fwdbwd" : "fwd", T, LSTM_BATCH, LSTM_DIM_X, LSTM_DIM_H, times[repeats / 2], times[0]);
    return 0;
}
