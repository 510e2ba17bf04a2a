"""stereo_depth_ros: learned stereo depth for ROS 2.

The core (models, estimator, geometry, data, training, evaluation) never imports rclpy;
everything ROS lives in ``stereo_depth_ros.ros``.
"""

__version__ = "0.1.0"
