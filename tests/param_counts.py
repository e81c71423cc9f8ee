"""Parameter counts of the layers the models use, written out by hand, and a plausible z-score: model tests pin
architectures with them."""

MEAN = [0.0, 120.0, 85.0, 70.0, 50.0, 1.0, 45.0]
STD = [0.4, 15.0, 10.0, 9.0, 14.0, 0.2, 8.0]


def conv(c_in, c_out, kernel=3):
    return c_in * c_out * kernel + c_out


def dense(n_in, n_out):
    return n_in * n_out + n_out


def lstm(n_in, k):  # PyTorch: 4 gates, input and recurrent kernels, two bias vectors
    return 4 * (k * n_in + k * k + 2 * k)
