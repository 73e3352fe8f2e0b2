/*===- rwkv_runtime.h - C API of the RWKV runtime -----------------*- C -*-===*\
|*                                                                            *|
|* A C wrapper over rwkv::Model (runtime/core/Runtime.h) and, for training,   *|
|* rwkv::TrainLibrary (runtime/core/TrainStep.h). Every function returns an   *|
|* rwkvrt_status (0 = success) and never throws or aborts; the message of the *|
|* last failure on this thread is rwkvrt_last_error(), which names the        *|
|* function and the argument, file, key or value at fault.                    *|
|*                                                                            *|
|* Lifetimes and threads: a model may be used from any number of threads at   *|
|* once; a state or a batch by one thread at a time (a second, concurrent     *|
|* call on it is refused with RWKVRT_ERR_BUSY rather than racing). A model    *|
|* cannot be closed while states made from it, batches opened on it or calls  *|
|* on it (from any thread) exist: rwkvrt_model_close then returns             *|
|* RWKVRT_ERR_BUSY, names what holds it, and leaves the model open and usable *|
|* (as sqlite3_close does with unfinalized statements). The same holds for    *|
|* training, kernel and tokenizer handles and calls in progress on them, and  *|
|* for freeing a state or closing a batch while a call uses it. Using a       *|
|* handle after it was closed or freed is undefined.                          *|
|*                                                                            *|
|* Names use the `rwkvrt_` prefix: the compiled `.so` exports `rwkv_step`,    *|
|* `rwkv_forward`, `rwkv_model_info`, ... and a same-named symbol here would  *|
|* interpose on them.                                                         *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef RWKV_RUNTIME_CORE_RWKV_RUNTIME_H
#define RWKV_RUNTIME_CORE_RWKV_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rwkvrt_status {
  RWKVRT_OK = 0,
  RWKVRT_ERR_INVALID_ARGUMENT = 1, /* null handle/pointer, bad token id */
  RWKVRT_ERR_LOAD = 2,             /* library/checkpoint mismatch or I/O */
  RWKVRT_ERR_RUNTIME = 3,          /* any other failure, e.g. of the GPU */
  RWKVRT_ERR_OUT_OF_MEMORY = 4,    /* host, or device (CUDA libraries) */
  RWKVRT_ERR_BUSY = 5, /* close/free of a handle still in use (see above) */
} rwkvrt_status;

typedef struct rwkvrt_model rwkvrt_model;
typedef struct rwkvrt_state rwkvrt_state;

typedef struct rwkvrt_config {
  int64_t version, n_layer, n_embd, n_head, head_size, dim_ffn, vocab_size;
  int64_t batch;
} rwkvrt_config;

/* Message of the last failed call on this thread ("" if none). Valid until
 * the next call on this thread. */
const char *rwkvrt_last_error(void);

/* Loads `library_path` (from rwkv-compile) and binds the weights of
 * `checkpoint_path`. threads <= 0 keeps the default; more than 1024 is
 * RWKVRT_ERR_INVALID_ARGUMENT. A CUDA library (rwkv_model_info() has
 * "target": "cuda") needs the CUDA driver (libcuda.so.1, or
 * $RWKV_CUDA_DRIVER); without one this is RWKVRT_ERR_LOAD saying why. Its
 * weights and states then live in device memory, and rwkvrt_state_tensor
 * gives a host copy (docs/runtime.md "CUDA libraries"). */
int rwkvrt_model_open(const char *library_path, const char *checkpoint_path,
                      int threads, rwkvrt_model **out_model);
/* Accepts NULL. RWKVRT_ERR_BUSY (the model stays open) while states of the
 * model, batches on it or calls on it from other threads exist. */
int rwkvrt_model_close(rwkvrt_model *model);
int rwkvrt_model_config(const rwkvrt_model *model, rwkvrt_config *out_config);
/* The library's rwkv_model_info() JSON, owned by the model. */
int rwkvrt_model_info_json(const rwkvrt_model *model, const char **out_json);

int rwkvrt_state_new(const rwkvrt_model *model, rwkvrt_state **out_state);
int rwkvrt_state_copy(const rwkvrt_state *src, rwkvrt_state **out_state);
/* Copies the contents of `src` into `dst` (same model). */
int rwkvrt_state_assign(rwkvrt_state *dst, const rwkvrt_state *src);
int rwkvrt_state_reset(rwkvrt_state *state);
/* Accepts NULL. RWKVRT_ERR_BUSY while another thread's call uses it. */
int rwkvrt_state_free(rwkvrt_state *state);
/* Pointer to one state tensor ("att_shift", "wkv", "ffn_shift") of a layer
 * and its element count; valid until the next call that uses the state. */
int rwkvrt_state_tensor(rwkvrt_state *state, const char *name, int64_t layer,
                        float **out_data, size_t *out_count);

/* RNN mode: runs the tokens ([batch, T] row-major) sequentially from
 * `state` (updated) and writes the last position's logits ([batch, V]) to
 * `logits`, which holds `logits_capacity` floats. `count` is at most
 * INT32_MAX (larger is RWKVRT_ERR_INVALID_ARGUMENT before any token is
 * read); bad ids, a count that is not a multiple of the batch, a state of
 * another model or a short logits buffer are RWKVRT_ERR_INVALID_ARGUMENT. */
int rwkvrt_step(const rwkvrt_model *model, rwkvrt_state *state,
                const int32_t *tokens, size_t count, float *logits,
                size_t logits_capacity);
/* Batched decode over a --batch N library (rwkv::BatchDecoder): N slots,
 * each with its own state, filled and freed between steps. */
typedef struct rwkvrt_batch rwkvrt_batch;
/* The batch keeps the model from being closed until it is closed. */
int rwkvrt_batch_open(const rwkvrt_model *model, rwkvrt_batch **out_batch);
/* Accepts NULL. RWKVRT_ERR_BUSY while another thread's call uses it. */
int rwkvrt_batch_close(rwkvrt_batch *batch);
/* Claims a free slot: zero state, or a copy of `initial` (a state of a
 * batch-1 model of the same shape, e.g. after a prefill; may be NULL). */
int rwkvrt_batch_add(rwkvrt_batch *batch, const rwkvrt_state *initial,
                     int64_t *out_slot);
int rwkvrt_batch_remove(rwkvrt_batch *batch, int64_t slot);
/* Copies a slot's state into `out`, a state of a batch-1 model. */
int rwkvrt_batch_export_state(const rwkvrt_batch *batch, int64_t slot,
                              rwkvrt_state *out);
/* One token for each of the `count` listed slots (active, distinct); the
 * other slots keep their state. Writes [N, V] logits (row = slot) into
 * `logits`, which holds `logits_capacity` floats. */
int rwkvrt_batch_step(rwkvrt_batch *batch, const int64_t *slots,
                      const int32_t *tokens, size_t count, float *logits,
                      size_t logits_capacity);

/* GPT mode: the same through the chunked form; with all_logits != 0 the
 * logits of every position ([batch, T, V]). */
int rwkvrt_forward(const rwkvrt_model *model, rwkvrt_state *state,
                   const int32_t *tokens, size_t count, int all_logits,
                   float *logits, size_t logits_capacity);

/*===------------------------------------------------------------------------===
 * Training libraries (rwkv-compile --train --batch B --ctx T; docs/ABI.md
 * "Training libraries"). A wrapper over rwkv::TrainLibrary: the caller owns
 * the weights (in the library's dtype, contiguous) and the f32 gradient
 * buffers, so any optimizer can update the weights in place between steps.
 *===------------------------------------------------------------------------===*/

typedef struct rwkvrt_train rwkvrt_train;

typedef struct rwkvrt_train_desc {
  int64_t batch, context, vocab_size, n_layer;
  int64_t n_weights;    /* weight arguments, in argument order */
  int64_t ignore_index; /* targets equal to it do not count */
} rwkvrt_train_desc;

/* Makes this process's malloc keep every freed block for reuse (no mmap of
 * large blocks, no trim): a training step frees and allocates the same
 * activation buffers every time, which otherwise are returned to the kernel
 * and faulted in again each step (0.1B B=4 T=512: 119 vs 169 tokens/s).
 * Process-wide and irreversible; for processes that train. */
void rwkvrt_train_reuse_freed_memory(void);

/* Loads a training library. threads <= 0 keeps the default. */
int rwkvrt_train_open(const char *library_path, int threads,
                      rwkvrt_train **out_train);
/* Accepts NULL. RWKVRT_ERR_BUSY while a call on it is in progress. */
int rwkvrt_train_close(rwkvrt_train *train);
int rwkvrt_train_config(const rwkvrt_train *train, rwkvrt_train_desc *out_desc);
/* The library's rwkv_model_info() JSON, owned by the handle. */
int rwkvrt_train_info_json(const rwkvrt_train *train, const char **out_json);
/* Weight `index` (0 <= index < n_weights): its checkpoint key, dtype name
 * ("f32", "bf16", "f16"), shape (rank entries) and element count. Strings
 * and the shape are owned by the handle. Any out pointer may be NULL. */
int rwkvrt_train_weight(const rwkvrt_train *train, int64_t index,
                        const char **out_name, const char **out_dtype,
                        const int64_t **out_shape, size_t *out_rank,
                        size_t *out_numel);
/* Shape of layer `layer`'s initial WKV state ([B, H, N, N], f32). */
int rwkvrt_train_state_shape(const rwkvrt_train *train, int64_t layer,
                             const int64_t **out_shape, size_t *out_rank,
                             size_t *out_numel);

/* One training step on a batch: `inputs` and `targets` are [B, T] row-major;
 * `weights[i]` points at weight i in its dtype. `states` is NULL (every
 * initial WKV state zero) or n_layer pointers, each NULL (zero) or [B, H, N,
 * N] f32. Writes the mean cross-entropy to `loss`, the f32 gradient of every
 * weight to `weight_grads[i]` (numel floats each) and, where `state_grads`
 * and its entry are non-NULL, the gradient of layer l's initial state to
 * `state_grads[l]`. Bad token ids are RWKVRT_ERR_INVALID_ARGUMENT. */
int rwkvrt_train_step(const rwkvrt_train *train, const int32_t *inputs,
                      const int32_t *targets, const void *const *weights,
                      const float *const *states, float *const *weight_grads,
                      float *const *state_grads, float *loss);
/* The loss alone (forward only); arguments as for rwkvrt_train_step. */
int rwkvrt_train_loss(const rwkvrt_train *train, const int32_t *inputs,
                      const int32_t *targets, const void *const *weights,
                      const float *const *states, float *loss);

/*===------------------------------------------------------------------------===
 * Kernel libraries (rwkv-compile --kernel wkv7 --batch B --ctx T --heads H
 * --head-size N; docs/ABI.md "Kernel libraries"): the WKV7 recurrence alone,
 * forward and backward, on caller-owned contiguous f32 buffers with C = H*N:
 * r, w, k, v, a, b, y and their gradients are [B, T, C], the states
 * [B, H, N, N]. w is the log-decay (the decay is exp(w)).
 *===------------------------------------------------------------------------===*/

typedef struct rwkvrt_kernel rwkvrt_kernel;

/* Loads a kernel library. threads <= 0 keeps the default. */
int rwkvrt_kernel_open(const char *library_path, int threads,
                       rwkvrt_kernel **out_kernel);
/* Accepts NULL. RWKVRT_ERR_BUSY while a call on it is in progress. */
int rwkvrt_kernel_close(rwkvrt_kernel *kernel);
/* The static shape the library was compiled for. Any out pointer may be
 * NULL. */
int rwkvrt_kernel_shape(const rwkvrt_kernel *kernel, int64_t *out_batch,
                        int64_t *out_context, int64_t *out_heads,
                        int64_t *out_head_size);
/* y = WKV7(r, w, k, v, a, b) from state0; the final state to state_out.
 * state0 may be NULL (zero). */
int rwkvrt_wkv7_forward(const rwkvrt_kernel *kernel, const float *r,
                        const float *w, const float *k, const float *v,
                        const float *a, const float *b, const float *state0,
                        float *y, float *state_out);
/* The gradients of r, w, k, v, a, b and state0 given dy (of y) and dstate
 * (of the final state); state0 and dstate may be NULL (zero), dstate0 may
 * be NULL (not wanted). */
int rwkvrt_wkv7_backward(const rwkvrt_kernel *kernel, const float *r,
                         const float *w, const float *k, const float *v,
                         const float *a, const float *b, const float *state0,
                         const float *dy, const float *dstate, float *dr,
                         float *dw, float *dk, float *dv, float *da, float *db,
                         float *dstate0);

/*===------------------------------------------------------------------------===
 * Tokenizers (runtime/text; docs/text.md). Encode and decode work on bytes:
 * encode takes any byte string, decode returns the tokens' raw bytes (not
 * necessarily valid UTF-8). Both write at most `capacity` elements and
 * always report the full size, so a call with capacity 0 (or a NULL buffer)
 * asks for the size. A handle may be used from several threads at once.
 *===------------------------------------------------------------------------===*/

typedef struct rwkvrt_tokenizer rwkvrt_tokenizer;

/* Opens a vocabulary: World (rwkv_vocab_v20230424.txt) or a HF
 * tokenizer.json (20B). */
int rwkvrt_tokenizer_open(const char *vocab_path,
                          rwkvrt_tokenizer **out_tokenizer);
/* Accepts NULL. RWKVRT_ERR_BUSY while a call on it is in progress. */
int rwkvrt_tokenizer_close(rwkvrt_tokenizer *tokenizer);
/* One past the largest id decode accepts. */
int rwkvrt_tokenizer_vocab_size(const rwkvrt_tokenizer *tokenizer,
                                size_t *out_size);
/* Encodes `length` bytes. Writes min(count, capacity) ids to `ids` and the
 * full count to *out_count (capacity 0 / ids NULL to query the size). */
int rwkvrt_tokenizer_encode(const rwkvrt_tokenizer *tokenizer,
                            const char *bytes, size_t length, int32_t *ids,
                            size_t capacity, size_t *out_count);
/* Decodes ids to raw bytes (not necessarily valid UTF-8), same sizing
 * protocol; an id outside the vocabulary is RWKVRT_ERR_INVALID_ARGUMENT
 * naming the id and its position. */
int rwkvrt_tokenizer_decode(const rwkvrt_tokenizer *tokenizer,
                            const int32_t *ids, size_t count, char *bytes,
                            size_t capacity, size_t *out_length);

#ifdef __cplusplus
}
#endif

#endif /* RWKV_RUNTIME_CORE_RWKV_RUNTIME_H */
